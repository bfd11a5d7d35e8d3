import torch
from torch import nn

from panoptic_st.models.batchnorm import freeze_batchnorm
from panoptic_st.models.teacher import MomentumTeacher


def small_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def set_student(student: nn.Module, value: float) -> None:
    """Every parameter and BN statistic = value; num_batches_tracked = 100 * value."""
    with torch.no_grad():
        for p in student.parameters():
            p.fill_(value)
        bn = student[1]
        bn.running_mean.fill_(value)
        bn.running_var.fill_(value)
        bn.num_batches_tracked.fill_(int(100 * value))


def test_teacher_after_five_steps_at_interval_two():
    student = small_net()
    teacher = MomentumTeacher(student, momentum=0.5, interval=2)
    changed = []
    for step in range(1, 6):
        set_student(student, float(step))
        changed.append(teacher.update(student, step))
    # step 1 copies (1), step 2: 0.5*1 + 0.5*2 = 1.5, step 3 skipped, step 4: 0.5*1.5 + 0.5*4 = 2.75, step 5 skipped
    assert changed == [True, True, False, True, False]
    for p in teacher.net.parameters():
        assert torch.allclose(p, torch.full_like(p, 2.75))
    bn = teacher.net[1]
    assert torch.allclose(bn.running_mean, torch.full((4,), 2.75))
    assert torch.allclose(bn.running_var, torch.full((4,), 2.75))
    assert bn.num_batches_tracked.item() == 100  # copied once, never averaged


def test_first_update_copies_even_off_interval():
    student = small_net()
    teacher = MomentumTeacher(student, momentum=0.99, interval=100)
    set_student(student, 3.0)
    assert teacher.update(student, step=7)
    assert all(torch.equal(p, torch.full_like(p, 3.0)) for p in teacher.net.parameters())


def test_teacher_is_frozen_eval_and_resumes_from_state_dict():
    student = small_net()
    parent = nn.ModuleDict({"student": student, "teacher": MomentumTeacher(student, interval=1)})
    parent.train()
    teacher = parent["teacher"]
    assert not teacher.training and not teacher.net[1].training
    assert all(not p.requires_grad for p in teacher.parameters())
    out = teacher(torch.rand(2, 3, 8, 8))
    assert not out.requires_grad
    teacher.update(student, 0)

    resumed = MomentumTeacher(small_net(), momentum=0.5, interval=1)
    resumed.load_state_dict(teacher.state_dict())
    set_student(student, 1.0)
    resumed.update(student, 1)  # already initialised: averages instead of copying
    expected = 0.5 * teacher.net[0].weight + 0.5
    assert torch.allclose(resumed.net[0].weight, expected)


def test_frozen_batchnorm_survives_train_and_gets_no_grad():
    model = small_net()
    with torch.no_grad():
        model[1].running_mean.fill_(0.3)
        model[1].running_var.fill_(2.0)
    assert freeze_batchnorm(model) == 1
    model.train()
    model(torch.rand(4, 3, 8, 8) * 5).sum().backward()
    bn = model[1]
    assert torch.equal(bn.running_mean, torch.full((4,), 0.3))
    assert torch.equal(bn.running_var, torch.full((4,), 2.0))
    assert bn.num_batches_tracked.item() == 0
    assert bn.weight.grad is None and bn.bias.grad is None
    assert model[0].weight.grad is not None


def test_teacher_runs_channels_last_and_matches_the_student_it_copies():
    torch.manual_seed(0)
    student = small_net().eval()
    teacher = MomentumTeacher(student, momentum=0.5, interval=1)
    teacher.update(student, 0)  # first update: a copy of the student
    teacher.update(student, 1)  # an averaging update (of identical weights) keeps the layout
    convs = [m.weight for m in teacher.net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    images = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        assert torch.allclose(teacher(images), student(images), atol=1e-6)
