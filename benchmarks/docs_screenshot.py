"""A picture of `genre serve`'s /docs taken offline: headless Chromium that can resolve no host
but 127.0.0.1, so every script, style sheet and font the page needs must come from the
service itself.

    genre fit --dataset compas --out /tmp/m
    python benchmarks/docs_screenshot.py --model /tmp/m

Starts `genre serve --model M` on a free port, waits for /health, opens
/docs#/default/recourse_recourse_post (the /recourse operation expanded: its request schema,
generated from the model's schema) in Chromium with
`--host-resolver-rules "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"`, writes the screenshot, stops the
server. Prints how much of the picture is not white: a page that could not load Swagger UI
(a CDN it cannot reach) is a blank white page, and the script then exits 1.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from genre.bench.serving import genre_serve

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="a saved GenRe model")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/serve/docs.png"))
    ap.add_argument("--browser", help="Chromium's executable (default: the first of "
                    f"{', '.join(BROWSERS)} on PATH)")
    ap.add_argument("--size", default="1280,1600", help="window width,height")
    args = ap.parse_args(argv)
    browser = args.browser or next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        raise SystemExit(f"no Chromium found (tried {', '.join(BROWSERS)}); give --browser")
    with genre_serve("--model", str(args.model)) as server, \
            tempfile.TemporaryDirectory() as profile:
        png = Path(profile) / "docs.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", f"--user-data-dir={profile}",
                        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                        f"--window-size={args.size}", "--virtual-time-budget=10000",
                        f"--screenshot={png}",
                        f"{server.url}/docs#/default/recourse_recourse_post"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120)
        pixels = np.asarray(Image.open(png).convert("L"))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, args.out)
    inked = float(np.mean(pixels < 250))
    print(f"wrote {args.out}: {pixels.shape[1]}x{pixels.shape[0]}, {inked:.1%} of the pixels "
          f"not white ({browser}, no host but 127.0.0.1 resolvable)")
    if inked < 0.01:
        raise SystemExit("the page is blank: Swagger UI did not load")


if __name__ == "__main__":
    main()
