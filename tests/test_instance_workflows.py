"""Instance workflows (all_classes, ICM, BASE, CCM) and source-mixing ratios run from their configs through
`train()`; every model trains on its own classes only; per-model predictions combine into one instance map."""

import functools
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides

import panoptic_st.instance.module as instance_module
import panoptic_st.instance.pseudo_labels as instance_pseudo_labels_module
from panoptic_st.checkpoints import load_checkpoint_state
from panoptic_st.config import load_config
from panoptic_st.data.labels import IGNORE_INDEX, THING_TRAIN_IDS, train_id
from panoptic_st.instance.classes import resolve_classes
from panoptic_st.instance.module import InstanceModule
from panoptic_st.instance.pseudo_labels import ClusteringSettings
from panoptic_st.panoptic.predictor import PanopticPredictor, combine_instances
from panoptic_st.training import train
from panoptic_st.workflows import (
    run_workflow,
    source_mix_experiments,
    workflows,
)

TINY = tiny_overrides("trainer.limit_val_batches=0", "trainer.max_steps=2", "data.check_on_setup=false")
WORKFLOW = ["data.batch_size=2", "data.source_mix=0.5"]  # 1 source + 1 target image per step: enough here
CAR, BUS, PERSON = train_id("car"), train_id("bus"), train_id("person")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: these tiny steps run several times faster without thread hand-offs on a shared CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def semantic_checkpoint(path: Path) -> Path:
    """An untrained toy semantic network saved as a Lightning-style checkpoint (only its masks are used)."""
    from panoptic_st.semantic.module import SemanticModule

    torch.manual_seed(0)
    module = SemanticModule(load_config("toy/semantic_baseline", ["semantic.encoder=mobilenetv3_small_100"]).semantic)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.fixture(scope="module")
def common(toy_root, tmp_path_factory):
    """Overrides of every stage: tiny data, 2 steps, no validation, a semantic checkpoint for the pseudo-labels."""
    semantic = semantic_checkpoint(tmp_path_factory.mktemp("wf_semantic") / "semantic.ckpt")
    return [f"data.root={toy_root}", *TINY, f"instance.semantic_checkpoint={semantic}"]


@pytest.fixture(scope="module")
def baseline(common, tmp_path_factory):
    """The all-classes baseline shared by ICM, BASE and the source-mixing runs: {experiment: train() result}."""
    experiment = workflows()["all_classes"][0].experiment
    out = tmp_path_factory.mktemp("wf_baseline")
    return {experiment: train(load_config(experiment, [*common, f"output_dir={out}"]))}


class Spy:
    """Records per class set (= per model) the batch compositions and the classes that reach the losses."""

    def __init__(self, monkeypatch):
        self.steps: dict[tuple, list[tuple[int, int]]] = {}
        self.labelled_classes: dict[tuple, set[int]] = {}
        self.clustered: dict[tuple, set[int]] = {}
        self.pseudo_classes: dict[tuple, set[int]] = {}
        step, labels, pseudo = (InstanceModule.training_step, instance_module.source_instance_labels,
                                instance_pseudo_labels_module.instance_pseudo_labels)

        def training_step(module, batch, batch_idx):
            parts = batch if "target" in batch or "source" in batch else {"source": batch}
            sizes = tuple(parts[k]["image"].shape[0] if parts.get(k) is not None else 0 for k in ("source", "target"))
            self.steps.setdefault(tuple(module.classes), []).append(sizes)
            return step(module, batch, batch_idx)

        def source_labels(semantic, instance, classes):
            result = labels(semantic, instance, classes)  # source labels (and target GT for monitoring)
            self.labelled_classes.setdefault(tuple(classes), set()).update(semantic[result > 0].unique().tolist())
            return result

        def pseudo_labels(embeddings, semantic, thing_classes, *args, **kwargs):
            instances, classes = pseudo(embeddings, semantic, thing_classes, *args, **kwargs)
            key = tuple(thing_classes)
            self.clustered.setdefault(key, set()).update(thing_classes)
            self.pseudo_classes.setdefault(key, set()).update(classes[1:].tolist())
            return instances, classes

        monkeypatch.setattr(InstanceModule, "training_step", training_step)
        monkeypatch.setattr(instance_module, "source_instance_labels", source_labels)
        monkeypatch.setattr(instance_pseudo_labels_module, "instance_pseudo_labels", pseudo_labels)


def assert_trained_on(result: dict, config: str, spy: Spy) -> tuple[int, ...]:
    """The stage's checkpoint, its source labels and its pseudo-labels cover only the configured classes."""
    cfg = load_config(config)
    expected = resolve_classes(list(cfg.instance.classes))
    hparams = load_checkpoint_state(result["checkpoint"])["hyper_parameters"]
    assert tuple(hparams["classes"]) == expected, config
    assert len(spy.steps[expected]) >= 2, config
    # SYNTHIA's truck and train instances have no semantic class: kept (as ignore) only by all-classes models
    allowed = set(expected) | ({IGNORE_INDEX} if set(expected) == set(THING_TRAIN_IDS) else set())
    assert spy.labelled_classes.get(expected, set()) <= allowed, (config, spy.labelled_classes)
    if cfg.instance.mode == "self_train":
        assert spy.clustered[expected] == set(expected), config
        assert spy.pseudo_classes[expected] <= set(expected), config
    return expected


def test_workflow_configs_chain_their_stages():
    stages = workflows()
    load = functools.cache(load_config)

    assert [len(stages[w]) for w in ("all_classes", "icm", "base", "ccm")] == [2, 9, 4, 6]
    for chain in stages.values():
        seen = set()
        for stage in chain:
            cfg = load(stage.experiment)
            assert cfg.stage == "instance"
            assert cfg.instance.mode == ("baseline" if stage.init_from is None else "self_train"), stage
            if stage.init_from is not None:
                assert stage.init_from in seen, stage
                # the config alone chains to the checkpoint its predecessor writes (runs from the CLI)
                assert cfg.instance.init_checkpoint == f"{load(stage.init_from).output_dir}/final.ckpt"
            seen.add(stage.experiment)
    icm = sorted(load(s.experiment).instance.classes[0] for s in stages["icm"][1:])
    assert icm == sorted(["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"])
    models = {w: [resolve_classes(load(s.experiment).instance.classes) for s in stages[w]
                  if load(s.experiment).instance.mode == "self_train"] for w in stages}
    for name, class_sets in models.items():  # the self-trained models of a workflow cover every class once
        assert sorted(c for s in class_sets for c in s) == sorted(THING_TRAIN_IDS), name


@pytest.mark.parametrize("workflow", ["all_classes", "icm", "base", "ccm"])
def test_workflow_trains_each_model_on_its_classes(workflow, baseline, common, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    done = {} if workflow == "all_classes" else baseline  # all_classes runs whole, under the spy
    results = run_workflow(workflow, [*common, *WORKFLOW], tmp_path, done=done)
    trained = [s for s in workflows()[workflow] if s.experiment not in done]
    assert trained and all(Path(results[s.experiment]["checkpoint"]).is_file() for s in trained)
    for stage in trained:
        assert_trained_on(results[stage.experiment], stage.experiment, spy)
        out = Path(results[stage.experiment]["checkpoint"]).parent
        assert out == tmp_path / Path(stage.experiment).name
        if stage.init_from is not None:  # started from its predecessor's checkpoint
            used = load_config(out / "config.yaml").instance.init_checkpoint
            assert used == results[stage.init_from]["checkpoint"], stage


@pytest.mark.parametrize("percent", [0, 25, 50, 75])
def test_source_mixing_ratio_shows_in_batches(percent, baseline, common, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    experiment = source_mix_experiments()[percent]
    [(_, init)] = baseline.items()
    cfg = load_config(experiment, [*common, f"output_dir={tmp_path}", f"instance.init_checkpoint={init['checkpoint']}"])
    assert cfg.data.source_mix == percent / 100
    result = train(cfg)
    classes = assert_trained_on(result, experiment, spy)
    batch = cfg.data.batch_size
    assert spy.steps[classes] == [(batch * percent // 100, batch - batch * percent // 100)] * 2
    assert ("train/source_loss" in result["metrics"]) == (percent > 0)
    assert "train/target_loss" in result["metrics"]


def test_oracle_self_training_learns_from_target_ground_truth(baseline, common, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    [(_, init)] = baseline.items()
    cfg = load_config("toy/instance_selftrain", [*common, f"output_dir={tmp_path}", "instance.pseudo_labels=ground_truth",
                                                 f"instance.init_checkpoint={init['checkpoint']}"])
    metrics = train(cfg)["metrics"]
    assert not spy.clustered  # the teacher's clustering is not used
    assert metrics["pseudo/false_positives"] == 0 and metrics["pseudo/true_positives"] > 0
    assert "train/target_loss" in metrics


@pytest.mark.parametrize("frozen", [True, False])
def test_self_training_freezes_batchnorm_only_when_asked(frozen, baseline, common, tmp_path):
    [(_, init)] = baseline.items()
    cfg = load_config("toy/instance_selftrain", [*common, f"output_dir={tmp_path}", f"instance.freeze_batchnorm={frozen}",
                                                 f"instance.init_checkpoint={init['checkpoint']}"])
    before = load_checkpoint_state(init["checkpoint"])["state_dict"]
    after = load_checkpoint_state(train(cfg)["checkpoint"])["state_dict"]
    bn = [k for k in before if k.startswith("net.") and k.endswith("running_mean")]
    assert bn
    assert all(torch.equal(before[k], after[k]) for k in bn) == frozen
    affine = [k.replace("running_mean", "weight") for k in bn]
    assert all(torch.equal(before[k], after[k]) for k in affine) == frozen
    convs = [k for k in before if k.startswith("net.") and k.endswith("weight") and before[k].dim() == 4]
    assert not all(torch.equal(before[k], after[k]) for k in convs)


def part(instances: torch.Tensor, classes: list[int], scores: list[float]) -> tuple[torch.Tensor, dict]:
    """One model's (instances, segments) of one image."""
    return instances, {"id": torch.arange(1, len(classes) + 1), "class": torch.tensor(classes, dtype=torch.long),
                       "score": torch.tensor(scores), "area": torch.bincount(instances.flatten())[1:]}


def test_per_class_models_combine_into_one_instance_map():
    car_map = torch.zeros(6, 8, dtype=torch.long)
    car_map[0:2, 0:3], car_map[4:6, 0:4] = 1, 2
    person_map = torch.zeros(6, 8, dtype=torch.long)
    person_map[0:3, 5:8] = 1
    person_map[1:3, 2:5] = 2  # overlaps car 1 at [1, 2]; the car has the higher score
    instances, segments = combine_instances([part(car_map, [CAR, CAR], [0.9, 0.6]),
                                             part(person_map, [PERSON, PERSON], [0.7, 0.8])])
    assert instances.unique().tolist() == [0, 1, 2, 3, 4]
    assert segments["id"].tolist() == [1, 2, 3, 4]
    assert segments["class"].tolist() == [CAR, CAR, PERSON, PERSON]
    assert torch.allclose(segments["score"], torch.tensor([0.9, 0.6, 0.7, 0.8]))
    assert segments["area"].tolist() == [int((instances == k).sum()) for k in range(1, 5)]
    assert instances[1, 2] == 1  # car (0.9) keeps the overlapping pixel
    assert torch.equal(instances == 4, (person_map == 2) & ~(car_map == 1))
    assert torch.equal(instances == 3, person_map == 1)
    assert torch.equal(instances == 2, car_map == 2)

    hidden = torch.where(car_map == 2, 1, 0)  # an instance hidden entirely by a better one is dropped
    instances, segments = combine_instances([part(car_map, [CAR, CAR], [0.9, 0.6]), part(hidden, [BUS], [0.1])])
    assert segments["class"].tolist() == [CAR, CAR] and instances.max() == 2


def test_instance_models_of_shared_classes_are_refused():
    net = torch.nn.Identity()
    with pytest.raises(ValueError, match="share classes"):
        PanopticPredictor(net, [net, net], [ClusteringSettings(classes=(CAR,)), ClusteringSettings(classes=(CAR, BUS))])


def test_capped_pseudo_label_clustering_labels_every_pixel():
    """Pseudo-labels cluster a subsample of large masks (instance.pseudo_label_max_points); every pixel
    still takes an instance, and well-separated objects come out as without the cap."""
    from panoptic_st.instance.pseudo_labels import instance_pseudo_labels

    g = torch.Generator().manual_seed(0)
    emb = torch.zeros(4, 60, 80)
    semantic = torch.zeros(60, 80, dtype=torch.long)  # road
    semantic[5:55, 5:75] = CAR  # 3500 px: two cars (2000 and 1500 px), 4.0 apart in embedding space
    emb[0, :, 45:] = 4.0
    emb += 0.05 * torch.randn(emb.shape, generator=g)
    full, full_classes = instance_pseudo_labels(emb, semantic, (CAR,), min_size=15)
    capped, capped_classes = instance_pseudo_labels(emb, semantic, (CAR,), min_size=15, max_points=256)
    assert torch.equal(capped, full) and torch.equal(capped_classes, full_classes)
    assert capped.unique().tolist() == [0, 1, 2] and bool((capped[semantic == CAR] > 0).all())
    assert load_config("toy/instance_selftrain").instance.pseudo_label_max_points == 512


@pytest.mark.parametrize("benchmark", ["synthia", "mixed"])
def test_real_benchmark_workflow_configs_load_with_their_sources(benchmark):
    names = {s.experiment for stages in workflows(benchmark).values() for s in stages}
    names |= set(source_mix_experiments(benchmark).values())
    assert len(names) == 23
    for name in names:
        cfg = load_config(name)
        assert cfg.data.sources == [benchmark] and cfg.name.startswith(f"{benchmark}_instance_"), name
        if "selftrain" in name or "mix_" in name:
            assert cfg.instance.mode == "self_train" and cfg.instance.semantic_checkpoint, name
