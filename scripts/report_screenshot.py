#!/usr/bin/env python
"""Make docs/report-digits.png: the README's main job (SimCLR on digits, 30 epochs), its report.html opened in
headless Chromium, the top of the page captured (the verdict, then the first pictures).

    python scripts/report_screenshot.py [--run runs/digits] [--out docs/report-digits.png] [--height 1800]

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


def screenshot(page: Path, out: Path, width: int, height: int) -> None:
    driver = headless_chromium(width, height)
    try:
        driver.get(page.resolve().as_uri())
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "runs" / "digits"), help="run directory (trained here if missing)")
    p.add_argument("--out", default=str(ROOT / "docs" / "report-digits.png"))
    p.add_argument("--width", type=int, default=1100)
    p.add_argument("--height", type=int, default=1800)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import selfsup
    from selfsup.artifacts import write_json
    from selfsup.evaluate import evaluate_run
    from selfsup.report import build_report

    run_dir = Path(args.run)
    if not (run_dir / "summary.json").exists():
        selfsup.train("digits", epochs=30, out=run_dir, overwrite=True, progress=False)
    run = selfsup.load(run_dir)
    if not (run_dir / "eval.json").exists():
        write_json(run_dir / "eval.json", evaluate_run(run, "digits"))
    page = build_report(run)
    screenshot(page, Path(args.out), args.width, args.height)
    print(f"{args.out} (from {page})")


if __name__ == "__main__":
    main()
