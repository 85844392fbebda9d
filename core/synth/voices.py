"""The voice bank: every singing voice under a free licence that ``septool synth`` can use.

A voice is one engine driving one recorded human speaker. ``festival-singing`` voices sing the
score themselves (festival's singing mode); ``festival-speech`` and ``flite-speech`` voices speak
each word, which ``world.py`` then stretches to its note and retunes with the WORLD vocoder.
Several Debian voices are the same person (festival's Hindi, Marathi and Telugu NSK voices; flite
and festival's slt), so the bank lists each speaker once. MBROLA's voices are non-free and are
not in the bank.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import SeptoolError

FESTIVAL_VOICES = Path("/usr/share/festival/voices")
ENGINES = ("festival-singing", "festival-speech", "flite-speech")
# MIDI ranges sung comfortably: male A2-D4, female G3-C5, child A3-D5
REGISTERS = {"male": (45, 62), "female": (55, 72), "child": (57, 74)}
# short singable words per language (written in the encoding festival's voice reads)
LYRICS = {
    "en": "la love night day go home sun light heart you me we run free time way dream sky rain fly stay know "
    "feel see hold fall rise blue gold fire road song town wind sea star moon down high low on one more now so "
    "true cold warm hand eyes call out back far near shine slow fast",
    "it": "la amo sole cuore mare luna notte vita mai sei noi tu per me ora via dove cielo vento casa amore "
    "sogno fuoco terra mano luce",
    "fi": "kuu yö sydän tuuli meri aamu ilta talvi kesä valo rakas sinä minä koti tie lumi sade taivas tähti laulu",
    "cs": "láska srdce noc den slunce měsíc moře domov cesta nebe vítr ty já my zpívej tančím oči ruce svět",
    "hi": "प्यार दिल रात दिन चाँद सूरज तारा घर राह हवा तुम हम मन गीत आज",
    "ca": "amor cor nit dia sol lluna mar cel vent foc casa vida tu jo ara camí somni llum",
    "ru": "любовь сердце ночь день солнце луна море небо ветер дом ты я мы песня свет",
}


@dataclass(frozen=True)
class Voice:
    """One singing voice of the bank.

    Args:
        name: the bank's name for it (``--voices`` takes these).
        speaker: the recorded person; one per distinct human voice.
        engine: one of ``ENGINES``.
        program: festival's voice name or flite's ``-voice`` argument.
        language: ISO 639-1 code of its lyrics.
        sex: ``female``, ``male`` or ``child``.
        rate: sample rate of what the engine produces.
        licence: of the voice data.
        package: the Debian package that installs it.
        encoding: of the text festival reads.
    """

    name: str
    speaker: str
    engine: str
    program: str
    language: str
    sex: str
    rate: int
    licence: str
    package: str
    encoding: str = "utf-8"

    @property
    def installed(self) -> bool:
        if self.engine == "flite-speech":
            return shutil.which("flite") is not None
        return shutil.which("text2wave") is not None and any(FESTIVAL_VOICES.glob(f"*/{self.program}"))

    @property
    def register(self) -> tuple[int, int]:
        return REGISTERS[self.sex]

    @property
    def words(self) -> list[str]:
        return LYRICS[self.language].split()

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("program", "encoding")} | {
            "installed": self.installed
        }


BANK = (
    Voice("kal", "kal", "festival-singing", "kal_diphone", "en", "male", 16000, "BSD-like (CMU)", "festvox-kallpc16k"),
    Voice("ked", "ked", "festival-singing", "ked_diphone", "en", "male", 16000, "BSD-like (CMU)", "festvox-kdlpc16k"),
    Voice("pc", "pc", "festival-singing", "pc_diphone", "it", "male", 16000, "GPL-2+", "festvox-itapc16k"),
    Voice("lp", "lp", "festival-singing", "lp_diphone", "it", "female", 16000, "GPL-2+", "festvox-italp16k"),
    Voice(
        "suo_fi_lj",
        "lj",
        "festival-singing",
        "suo_fi_lj_diphone",
        "fi",
        "female",
        22050,
        "LGPL-2.1",
        "festvox-suopuhe-lj",
        "latin-1",
    ),  # fmt: skip
    Voice(
        "hy_fi_mv",
        "mv",
        "festival-singing",
        "hy_fi_mv_diphone",
        "fi",
        "male",
        22050,
        "LGPL-2.1",
        "festvox-suopuhe-mv",
        "latin-1",
    ),  # fmt: skip
    Voice(
        "czech_dita",
        "dita",
        "festival-singing",
        "czech_dita",
        "cs",
        "female",
        32000,
        "GPL-3+",
        "festvox-czech-dita",
        "iso-8859-2",
    ),  # fmt: skip
    Voice(
        "czech_krb",
        "krb",
        "festival-singing",
        "czech_krb",
        "cs",
        "child",
        32000,
        "GPL-3+",
        "festvox-czech-krb",
        "iso-8859-2",
    ),  # fmt: skip
    Voice(
        "czech_machac",
        "machac",
        "festival-singing",
        "czech_machac",
        "cs",
        "male",
        32000,
        "GPL-3+",
        "festvox-czech-machac",
        "iso-8859-2",
    ),  # fmt: skip
    Voice(
        "czech_ph",
        "ph",
        "festival-singing",
        "czech_ph",
        "cs",
        "male",
        44100,
        "GPL-2+",
        "festvox-czech-ph",
        "iso-8859-2",
    ),  # fmt: skip
    Voice(
        "hindi_nsk",
        "nsk",
        "festival-singing",
        "hindi_NSK_diphone",
        "hi",
        "male",
        16000,
        "GPL-2+",
        "festvox-hi-nsk festival-hi",
    ),  # fmt: skip
    Voice("awb", "awb", "flite-speech", "awb", "en", "male", 16000, "BSD-like (CMU)", "flite"),
    Voice("rms", "rms", "flite-speech", "rms", "en", "male", 16000, "BSD-like (CMU)", "flite"),
    Voice(
        "slt",
        "slt",
        "festival-speech",
        "cmu_us_slt_arctic_hts",
        "en",
        "female",
        32000,
        "BSD-like (CMU)",
        "festvox-us-slt-hts",
    ),  # fmt: skip
    Voice(
        "ona",
        "ona",
        "festival-speech",
        "upc_ca_ona_hts",
        "ca",
        "female",
        16000,
        "LGPL-2.1+",
        "festvox-ca-ona-hts",
        "latin-1",
    ),  # fmt: skip
    Voice(
        "nsh",
        "nsh",
        "festival-speech",
        "msu_ru_nsh_clunits",
        "ru",
        "male",
        16000,
        "BSD-like (MSU)",
        "festvox-ru",
    ),  # fmt: skip
)
VOICES = {v.name: v for v in BANK}
# never in the shipped model's training songs: its held-out test set is sung by these
HELD_OUT = ("lp", "ked", "czech_machac")


def installed_voices() -> list[Voice]:
    return [v for v in BANK if v.installed]


def choose_voices(selection: str | Sequence[str]) -> list[Voice]:
    """``all``, ``train`` (the bank less ``HELD_OUT``), ``test`` (``HELD_OUT``) or voice names; installed only."""
    if isinstance(selection, str) and selection in ("all", "train", "test"):
        names = [v.name for v in BANK]
        names = {"all": names, "train": [n for n in names if n not in HELD_OUT], "test": list(HELD_OUT)}[selection]
    else:
        names = [selection] if isinstance(selection, str) else list(selection)
        unknown = [n for n in names if n not in VOICES]
        if unknown:
            raise SeptoolError(f"unknown voice {unknown[0]!r}; the bank has {', '.join(VOICES)}")
    missing = [VOICES[n] for n in names if not VOICES[n].installed]
    chosen = [VOICES[n] for n in names if VOICES[n].installed]
    if not chosen:
        packages = " ".join(sorted({p for v in missing for p in v.package.split()}))
        raise SeptoolError(f"none of the voices asked for is installed (Debian: apt-get install {packages})")
    return chosen


def _festival_text(word: str, voice: Voice) -> bytes:
    try:
        return word.encode(voice.encoding)
    except UnicodeEncodeError:
        raise SeptoolError(f"voice {voice.name!r} cannot read the word {word!r}") from None


def sing_festival(voice: Voice, notes: list[tuple[float, float, float]], words: list[str]) -> np.ndarray:
    """Festival's singing mode: ``notes`` as (start s, length s, Hz) with one word each; mono at ``voice.rate``."""
    body, now = [], 0.0
    for (start, length, hz), word in zip(notes, words, strict=True):
        if start > now + 1e-6:
            body.append(f'<REST BEATS="{start - now:.4f}"></REST>')
        body.append(f'<PITCH FREQ="{hz:.2f}"><DURATION BEATS="{length:.4f}">{word}</DURATION></PITCH>')
        now = start + length
    xml = (
        '<?xml version="1.0"?>\n<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
        '"Singing.v0_1.dtd" []>\n<SINGING BPM="50">\n' + "\n".join(body) + "\n</SINGING>\n"
    )  # at 50 BPM festival's beat lasts a second
    with tempfile.TemporaryDirectory(prefix="septool-sing-") as tmp:
        score, wav = Path(tmp) / "line.xml", Path(tmp) / "line.wav"
        score.write_bytes(_festival_text(xml, voice))
        command = ["text2wave", "-mode", "singing", "-eval", f"(voice_{voice.program})", str(score), "-o", str(wav)]
        result = subprocess.run(command, capture_output=True)
        if result.returncode != 0 or not wav.exists():
            reason = result.stderr.decode("utf-8", "replace").strip()[-200:] or f"exit status {result.returncode}"
            raise SeptoolError(f"festival failed to sing with voice {voice.name!r}: {reason}")
        audio, _ = sf.read(wav, dtype="float64")
    return audio


_SPOKEN: dict[tuple[str, str], np.ndarray] = {}  # a song repeats its words: each is spoken once per process


def spoken_words(voice: Voice, words: list[str]) -> list[np.ndarray]:
    """Each word spoken by a speech voice, mono at ``voice.rate``; the new ones in one engine call."""
    new = list(dict.fromkeys(w for w in words if (voice.name, w) not in _SPOKEN))
    if new:
        for word, audio in zip(new, speak(voice, new), strict=True):
            _SPOKEN[voice.name, word] = audio
    return [_SPOKEN[voice.name, w] for w in words]


def speak(voice: Voice, words: list[str]) -> list[np.ndarray]:
    """Each word spoken on its own (one festival or flite process per call)."""
    with tempfile.TemporaryDirectory(prefix="septool-speak-") as tmp:
        outs = [Path(tmp) / f"w{i}.wav" for i in range(len(words))]
        if voice.engine == "flite-speech":
            for word, out in zip(words, outs, strict=True):
                result = subprocess.run(
                    ["flite", "-voice", voice.program, "-t", word, "-o", str(out)], capture_output=True
                )
                _check_spoken(result, out, voice)
        else:
            lines = [f"(voice_{voice.program})"]
            for word, out in zip(words, outs, strict=True):
                quoted = word.replace("\\", "").replace('"', "")
                lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{out}" \'riff)')
            script = Path(tmp) / "speak.scm"
            script.write_bytes(_festival_text("\n".join(lines) + "\n", voice))
            result = subprocess.run(["festival", "--batch", str(script)], capture_output=True)
            for out in outs:
                _check_spoken(result, out, voice)
        return [sf.read(out, dtype="float64")[0] for out in outs]


def _check_spoken(result: subprocess.CompletedProcess, out: Path, voice: Voice) -> None:
    if result.returncode != 0 or not out.exists():
        reason = result.stderr.decode("utf-8", "replace").strip()[-200:] or f"exit status {result.returncode}"
        raise SeptoolError(f"voice {voice.name!r} ({voice.engine}) failed to speak: {reason}")
