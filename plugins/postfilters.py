"""Built-in post-filters: soft masks and the multichannel Wiener filter (``septool.wiener``)."""

from septool import PostFilterSpec, hookimpl
from septool.wiener import SpatialCovariances, covariance_sums, softmask, wiener


def _softmask(magnitudes, mixture, statistics, iterations):
    return softmask(magnitudes, mixture)


def _wiener(magnitudes, mixture, covariances, iterations):
    return wiener(magnitudes, mixture, iterations, covariances)


@hookimpl
def register_postfilters(register):
    register(PostFilterSpec("softmask", "each estimate's share est_j / sum_k est_k of the mixture", _softmask))
    register(
        PostFilterSpec(
            "wiener",
            "multichannel Wiener filter (EM), spatial covariances of the whole recording first",
            _wiener,
            first_pass=covariance_sums,
            statistics=SpatialCovariances.from_sums,
            iterative=True,
        )
    )
