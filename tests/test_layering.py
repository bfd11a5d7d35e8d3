"""The branches share helpers through `panoptic_st.ops`, never each other's modules."""

import subprocess
import sys

OPS = ("panoptic_st.ops.classes", "panoptic_st.ops.geometry", "panoptic_st.ops.images", "panoptic_st.ops.networks",
       "panoptic_st.ops.segments")


def imported_modules(*modules: str) -> set[str]:
    """The panoptic_st modules a fresh interpreter has loaded after importing `modules`."""
    code = f"import sys, {', '.join(modules)}; print(' '.join(m for m in sys.modules if m.startswith('panoptic_st')))"
    return set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split())


def test_instance_branch_loads_no_semantic_branch_module():
    assert not {m for m in imported_modules("panoptic_st.instance.module") if m.startswith("panoptic_st.semantic")}


def test_shared_helpers_load_no_branch():
    layers = ("panoptic_st.semantic", "panoptic_st.instance", "panoptic_st.panoptic", "panoptic_st.training")
    assert not {m for m in imported_modules(*OPS) if m.startswith(layers)}
