"""Training and inference throughput of large-kernel CNNs: leanconv vs PyTorch (see leanconv.bench.models)."""
import sys

from leanconv.bench.models import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
