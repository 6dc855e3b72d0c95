"""Screenshots of every dashboard page (the images in docs/ and the README).

Start a dashboard first, e.g. ``python -m orchestrator demo --model tiny --serve --port 8700``,
then ``python scripts/dashboard_screenshots.py --url http://127.0.0.1:8700 --out docs/img``.
Uses Debian's chromium through playwright (no browser download).
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = [("overview", "/"), ("members", "/members"), ("round", "/rounds/2"), ("lineage", "/lineage"),
         ("unlearning", "/unlearning"), ("anchors", "/anchors")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8700", help="a running dashboard")
    parser.add_argument("--out", default="docs/img", help="folder for the PNG files (default docs/img)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    url = args.url.rstrip("/")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    # The anchors page with a live inclusion check of the newest anchored record.
    html = urllib.request.urlopen(url + "/anchors").read().decode()
    link = re.search(r'href="(/anchors\?tx=[^"]+)"', html)
    pages = PAGES + ([("anchors-check", link.group(1).replace("&amp;", "&"))] if link else [])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        for name, path, viewport, suffix in [(n, q, {"width": 1280, "height": 900}, "") for n, q in pages] + [
                ("overview", "/", {"width": 390, "height": 844}, "-phone"),
                ("unlearning", "/unlearning", {"width": 390, "height": 844}, "-phone")]:
            page = browser.new_page(viewport=viewport, device_scale_factor=1)
            response = page.goto(url + path)
            if response is None or response.status != 200:
                print(f"{path}: HTTP {response and response.status}", file=sys.stderr)
                return 1
            target = out / f"dashboard-{name}{suffix}.png"
            page.screenshot(path=str(target), full_page=True)
            print(target)
            page.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
