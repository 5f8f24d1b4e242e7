#!/usr/bin/env python
"""Make docs/report-digits.png: the README's main job (its command, run here unless --run holds its result), its
report.html opened in headless Chromium and captured from the top (the verdict, the pictures) down to the end of
the Clusters section.

    python scripts/report_screenshot.py [--run runs/digits] [--out docs/report-digits.png]

Needs chromium and chromium-driver (Debian packages; scripts/test.sh installs them) and selenium.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def headless_chromium(width: int, height: int):
    """A headless Chromium (selenium) with a window of width x height pixels; the caller quits it."""
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--hide-scrollbars", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")),
                            options=opts)


#: the README's main job, as its first command runs it (after the installs)
MAIN_JOB = ["train", "--data", "digits", "--epochs", "30", "--overwrite", "--cluster", "10"]

#: JavaScript: the page's height down to the end of the Clusters section (the top of the heading after it)
CLUSTERS_END = """
const heads = Array.from(document.querySelectorAll('h2'));
const i = heads.findIndex(h => h.textContent === 'Clusters');
if (i < 0) return -1;
const next = heads[i + 1];
return Math.ceil(next ? next.getBoundingClientRect().top + window.scrollY : document.body.scrollHeight);
"""


def screenshot(page: Path, out: Path, width: int, max_height: int) -> int:
    """Capture `page` from the top to the end of its Clusters section (at most `max_height` px); the height."""
    driver = headless_chromium(width, 900)
    try:
        driver.get(page.resolve().as_uri())
        height = driver.execute_script(CLUSTERS_END)
        if height < 0:
            raise SystemExit(f"{page}: no Clusters section (train with --cluster K)")
        height = min(int(height) + 16, max_height)
        driver.set_window_size(width, height)
        driver.save_screenshot(str(out))
        return height
    finally:
        driver.quit()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "runs" / "digits"), help="run directory (trained here if missing)")
    p.add_argument("--out", default=str(ROOT / "docs" / "report-digits.png"))
    p.add_argument("--width", type=int, default=1100)
    p.add_argument("--max-height", type=int, default=6000)
    args = p.parse_args()
    run_dir = Path(args.run)
    if not (run_dir / "clusters.csv").exists():
        import subprocess

        subprocess.run([sys.executable, "-m", "selfsup", *MAIN_JOB, "--out", str(run_dir)], check=True)
    height = screenshot(run_dir / "report.html", Path(args.out), args.width, args.max_height)
    print(f"{args.out}: {args.width} x {height} px (from {run_dir / 'report.html'})")


if __name__ == "__main__":
    main()
