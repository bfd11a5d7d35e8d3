"""Rehearse the thesis launchers on native-size toy data (`--help` for the arguments); the code is
`panoptic_st.experiments.thesis.rehearse`."""

from panoptic_st.experiments.thesis.rehearse import main

if __name__ == "__main__":
    raise SystemExit(main())
