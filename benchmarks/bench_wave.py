"""Wave solver: fast path vs scikit-fem/scipy sparse loop (see leanconv.bench.wave)."""
import sys

from leanconv.bench.wave import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
