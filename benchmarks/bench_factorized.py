"""One-way factorized (CP) convolutions: leanconv vs dense nn.Conv and tensorly-torch.

Same as ``leanconv bench factorized``; see ``--help``.
"""
import sys

from leanconv.bench.factorized import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
