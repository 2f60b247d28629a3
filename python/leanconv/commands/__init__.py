"""Sub-commands of the ``leanconv`` command line, one module each."""
