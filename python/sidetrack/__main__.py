"""python -m sidetrack: what this package is and how to benchmark it."""
import sys

from . import __version__


def main() -> int:
    print(f"sidetrack {__version__} (Python client)\n"
          "  import sidetrack as mlflow      # MLflow's fluent API\n"
          "  python -m sidetrack.bench --help  # the logging-cost benchmark")
    return 0


if __name__ == "__main__":
    sys.exit(main())
