"""Exit 0 when the URL given answers 200, 1 otherwise (used by ``make health``)."""

import sys
import urllib.error
import urllib.request


def main(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except (OSError, urllib.error.URLError) as error:
        sys.stderr.write(f"not ready: {url}: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
