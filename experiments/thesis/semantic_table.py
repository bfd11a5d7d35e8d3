"""Thesis semantic table on the real datasets (`--help` for the arguments); the code is
`panoptic_st.experiments.thesis.semantic_table`."""

from panoptic_st.experiments.thesis.semantic_table import main

if __name__ == "__main__":
    raise SystemExit(main())
