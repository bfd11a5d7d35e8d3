"""The thesis-table launchers run by `experiments/thesis/*.py`: the shared launch settings and commands (`launch`),
the semantic, instance and panoptic tables, and their rehearsal on native-size toy data."""
