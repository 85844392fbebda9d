"""Built-in post-filters: soft masks and the multichannel Wiener filter (``septool.wiener``)."""

from septool import PostFilterSpec, hookimpl


def _softmask(magnitudes, mixture, statistics, iterations):
    from septool.wiener import softmask

    return softmask(magnitudes, mixture)


def _wiener(magnitudes, mixture, covariances, iterations):
    from septool.wiener import wiener

    return wiener(magnitudes, mixture, iterations, covariances)


def _covariance_sums(magnitudes, mixture):
    from septool.wiener import covariance_sums

    return covariance_sums(magnitudes, mixture)


def _covariances(sums):
    from septool.wiener import SpatialCovariances

    return SpatialCovariances.from_sums(sums)


@hookimpl
def register_postfilters(register):
    register(PostFilterSpec("softmask", "each estimate's share est_j / sum_k est_k of the mixture", _softmask))
    register(
        PostFilterSpec(
            "wiener",
            "multichannel Wiener filter (EM), spatial covariances of the whole recording first",
            _wiener,
            first_pass=_covariance_sums,
            statistics=_covariances,
            iterative=True,
        )
    )
