"""Depthwise convolution: leanconv vs PyTorch (NCHW and channels_last); see leanconv.bench.depthwise."""
import sys

from leanconv.bench.depthwise import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
