"""Drop-in modules against the torch modules they replace; see leanconv.bench.dropin."""
import sys

from leanconv.bench.dropin import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
