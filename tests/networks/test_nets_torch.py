"""Torch networks of the registry: shapes, validation, checkpoints, references, training."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from model.errors import InputError
from model.networks.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from model.networks.inputs import InputDims, ShapeError, example_batch
from model.networks.registry import get_model, get_model_class, model_names

HERE = Path(__file__).parent
TORCH = model_names("torch")
DIMS = InputDims(n_dynamic=4, n_static=3)

_spec = importlib.util.spec_from_file_location("make_references", HERE / "make_references.py")
refs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(refs)


def build(name, **kw):
    torch.manual_seed(0)
    return get_model(name, n_dynamic=DIMS.n_dynamic, n_static=DIMS.n_static, **kw).eval()


@pytest.mark.parametrize("name", TORCH)
@pytest.mark.parametrize("hw", [(1, 1), (32, 32), (5, 7)])
def test_output_shape(name, hw):
    net = build(name)
    with torch.no_grad():
        y = net(example_batch(DIMS, 2, *hw))
    assert y.shape == (2, 1, *hw)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["pscnet", "unet"])
def test_full_scene(name):
    net = get_model(name, n_dynamic=10, n_static=10).eval()
    with torch.no_grad():
        y = net(example_batch(InputDims(10, 10), 1, 150, 320))
    assert y.shape == (1, 1, 150, 320)


@pytest.mark.parametrize("name", TORCH)
def test_parameter_budget(name):
    n = get_model(name, n_dynamic=10, n_static=10).n_parameters()
    assert 5e4 <= n <= 1.2e6, n


def test_pscnet_parameter_target():
    assert 3e5 <= get_model("pscnet", n_dynamic=10, n_static=10).n_parameters() <= 1e6


@pytest.mark.parametrize("name", TORCH)
def test_shape_errors_name_expected_dims(name):
    net = build(name)
    b = example_batch(DIMS, 2, 8, 8)
    bad = dict(b, x3h=b["x3h"][:, 1:])
    with pytest.raises(ShapeError, match=r"expected x3h \(batch, time, channel, lat, lon\) = "
                                         r"\(B, 8, 4, H, W\), got \(2, 7, 4, 8, 8\)"):
        net(bad)
    with pytest.raises(ShapeError, match=r"expected static \(batch, channel, lat, lon\) = "
                                         r"\(B, 3, H, W\)"):
        net(dict(b, static=b["static"][:, :2]))
    with pytest.raises(ShapeError, match="lacks xweek"):
        net({k: v for k, v in b.items() if k != "xweek"})
    with pytest.raises(ShapeError, match="share batch size and grid"):
        net(dict(b, xday=b["xday"][..., :7]))
    with pytest.raises(InputError):          # ShapeError is an InputError (CLI: exit 2)
        net(dict(b, x3h=b["x3h"][:, :, :3]))


@pytest.mark.parametrize("name", TORCH)
def test_config_rebuilds(name):
    net = build(name)
    cfg = net.config_dict()
    json.dumps(cfg)
    again = get_model_class(name)(**json.loads(json.dumps(cfg)))
    assert again.config_dict() == cfg
    assert again.n_parameters() == net.n_parameters()


@pytest.mark.parametrize("name", TORCH)
def test_checkpoint_round_trip(name, tmp_path):
    net = build(name)
    batch = example_batch(DIMS, 2, 9, 11, seed=3)
    with torch.no_grad():
        expected = net(batch)
    path = save_checkpoint(tmp_path / f"{name}.pt", net,
                           {"norm": {"mean": [0.1, 0.2]}, "epoch": 3})
    model, extra = load_checkpoint(path, "cpu", name=name)
    assert type(model) is type(net) and not model.training
    assert extra == {"norm": {"mean": [0.1, 0.2]}, "epoch": 3}
    with torch.no_grad():
        torch.testing.assert_close(model(batch), expected, rtol=0, atol=0)
    other = "unet" if name != "unet" else "pscnet"
    with pytest.raises(InputError, match=f"holds model '{name}', not '{other}'"):
        load_checkpoint(path, name=other)


def test_checkpoint_unwraps_data_parallel(tmp_path):
    net = build("mlp")
    path = save_checkpoint(tmp_path / "dp.pt", torch.nn.DataParallel(net))
    model, _ = load_checkpoint(path, name="mlp")
    assert model.config_dict() == net.config_dict()


def test_checkpoint_errors(tmp_path):
    net = build("mlp")
    path = save_checkpoint(tmp_path / "m.pt", net, {})
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable model checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    payload = read_checkpoint(path)
    payload["version"] = 99
    torch.save(payload, tmp_path / "v99.pt")
    with pytest.raises(InputError, match="format version 99.*retrain"):
        load_checkpoint(tmp_path / "v99.pt")
    payload["version"] = 1
    payload["config"]["hidden"] = [8]
    torch.save(payload, tmp_path / "cfg.pt")
    with pytest.raises(InputError, match="does not fit this code"):
        load_checkpoint(tmp_path / "cfg.pt")
    assert not list(tmp_path.glob(".*tmp*"))   # atomic writes leave no temporaries


def test_no_var_kwargs_in_constructors():
    from model.networks.base import TorchModel

    with pytest.raises(TypeError, match=r"\*\*kwargs"):
        class Bad(TorchModel):  # noqa: F841
            def __init__(self, n_dynamic, n_static, **kw):
                super().__init__(n_dynamic, n_static)


def test_reference_outputs_file_is_small():
    assert (HERE / "reference_outputs.pt").stat().st_size < 1_000_000


@pytest.mark.parametrize("name", TORCH)
def test_reference_output(name):
    stored = torch.load(HERE / "reference_outputs.pt", weights_only=True)["outputs"]
    assert name in stored, "run tests/networks/make_references.py"
    torch.testing.assert_close(refs.compute(name), stored[name], rtol=1e-4, atol=1e-5)


def _target(batch):
    """A learnable synthetic target: last 3-hourly value of channel 0 plus a static term."""
    return 0.7 * batch["x3h"][:, -1, :1] + 0.3 * batch["static"][:, :1]


@pytest.mark.parametrize("name", TORCH)
def test_training_reduces_loss(name):
    net = build(name).train()
    batch = example_batch(DIMS, 4, 12, 12, seed=5)
    y = _target(batch)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(batch), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.7 * losses[0], losses


@pytest.mark.parametrize("name", ["pscnet", "unet", "lstm"])
def test_runs_on_device(name, device):
    net = build(name).to(device)
    batch = example_batch(DIMS, 2, 16, 16, device=device)
    net.train()
    loss = torch.nn.functional.mse_loss(net(batch), _target(batch))
    loss.backward()
    net.eval()
    with torch.no_grad():
        y = net(batch)
    assert y.device.type == device and y.shape == (2, 1, 16, 16)


@pytest.mark.gpu
@pytest.mark.parametrize("name", TORCH)
def test_cpu_gpu_agree(name):
    cudnn_tf32, mm_tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        net = build(name)
        batch = example_batch(DIMS, 2, 20, 24, seed=7)
        with torch.no_grad():
            cpu = net(batch)
            gpu = net.to("cuda")({k: v.cuda() for k, v in batch.items()}).cpu()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn_tf32, mm_tf32
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-4)


def test_pscnet_ablations():
    for kw in (dict(use_mftf=False), dict(se_mode="global"), dict(scales=(1,)),
               dict(scales=[8, 2, 1], depths=[1, 1, 1])):
        net = build("pscnet", **kw)
        with torch.no_grad():
            assert net(example_batch(DIMS, 1, 13, 10)).shape == (1, 1, 13, 10)
    with pytest.raises(InputError, match="scales must decrease to 1"):
        build("pscnet", scales=(4, 3, 1))
    with pytest.raises(InputError, match="se_mode must be"):
        build("pscnet", se_mode="channel")


def test_pscnet_is_separable_in_time():
    """The temporal stage mixes no pixels: changing one pixel's history changes only it."""
    net = build("pscnet")
    b = example_batch(DIMS, 1, 8, 8)
    b2 = {k: v.clone() for k, v in b.items()}
    b2["x3h"][0, :, :, 3, 4] += 1.0
    with torch.no_grad():
        d = (net.embed(b2) - net.embed(b)).abs().sum(dim=1)[0]
    assert d[3, 4] > 0
    d[3, 4] = 0
    assert d.max() == 0


def test_pscnet_branch_weights_sum_to_one():
    net = build("pscnet")
    with torch.no_grad():
        w = net.branch_weights(example_batch(DIMS, 2, 6, 6))
    assert w.shape == (2, 3, 6, 6)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(2, 6, 6))


def test_local_se_keeps_detail_global_does_not_see_it():
    """The local SE block's gates vary in space (fine structure), the plain SE's do not."""
    from model.networks.pscnet import LocalSE

    torch.manual_seed(0)
    x = torch.randn(1, 16, 24, 24)
    local, plain = LocalSE(16, "local"), LocalSE(16, "global")
    with torch.no_grad():
        g_local = local(x) / x
        g_plain = plain(x) / x
    assert g_local[0, 0].std() > 1e-3
    assert g_plain[0, 0].std() < 1e-5


def test_lstm_runs_a_shared_history_once_with_the_same_result():
    """In inference, the LSTM runs the weekly and daily steps once for consecutive scenes that
    share them (the scenes of one day, as the archive batches them) and each scene's 3-hourly
    steps from that state: the same prediction as the whole sequence per scene (checked
    against the training-mode path, which never shares)."""
    from model.networks.pixel import PixelLSTM, shared_history

    torch.manual_seed(0)
    net = PixelLSTM(5, 4, hidden=16).eval()
    n = 300
    day_a, day_b = torch.randn(1, 7, 5, 1, n), torch.randn(1, 7, 5, 1, n)
    batch = {"x3h": torch.randn(6, 8, 5, 1, n),
             "xday": torch.cat([day_a.expand(4, -1, -1, -1, -1), day_b.expand(2, -1, -1, -1, -1)])[[0, 1, 2, 4, 5, 3]],
             "xweek": torch.randn(1, 4, 5, 1, n).expand(6, -1, -1, -1, -1).clone(),
             "static": torch.randn(1, 4, 1, n).expand(6, -1, -1, -1).clone()}
    assert shared_history(batch) == [[0, 1, 2], [3, 4], [5]]
    with torch.no_grad():
        shared = net(batch)
        net.train()                                   # no dropout (one value per layer pair: 0)
        whole = net(batch)
    assert shared.shape == (6, 1, 1, n)
    torch.testing.assert_close(shared, whole, rtol=0, atol=1e-6)
    other = dict(batch, static=batch["static"] + torch.arange(6.0)[:, None, None, None])
    assert shared_history(other) == [[k] for k in range(6)]   # a different static layer: no sharing
    # batches of single pixels (training, tuning) are never grouped: no comparisons at all
    pixels = {k: v[..., :1] for k, v in batch.items()}
    assert shared_history(pixels) == [[k] for k in range(6)]


@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_convlstm_split_gates_equal_the_concatenated_form(fmt):
    """The ConvLSTM convolves its gates' input by channel groups (context once, every step's
    input in one call, the hidden state in the recurrence): the same outputs and gradients as
    one convolution of the concatenated [x_t, ctx, h] per step (Shi et al. 2015), written
    out here independently."""
    import torch.nn.functional as F

    from model.networks.conv import ConvLSTM

    torch.manual_seed(0)
    net = ConvLSTM(5, 3, hidden=8, context=6).to(memory_format=fmt)
    batch = example_batch(InputDims(n_dynamic=5, n_static=3), 2, 9, 11)

    def concatenated(b):
        ctx = net.context(torch.cat([b["xday"].flatten(1, 2), b["xweek"].flatten(1, 2), b["static"]], 1))
        h = torch.tanh(net.init_h(ctx))
        c = torch.zeros_like(h)
        for t in range(b["x3h"].shape[1]):
            i, f, o, g = net.gates(torch.cat([b["x3h"][:, t], ctx, h], 1)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return net.head(torch.cat([h, ctx], 1))

    split = net(batch)
    whole = concatenated(batch)
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)
    g_split = torch.autograd.grad(F.mse_loss(split, torch.zeros_like(split)), net.gates.weight)[0]
    g_whole = torch.autograd.grad(F.mse_loss(whole, torch.zeros_like(whole)), net.gates.weight)[0]
    torch.testing.assert_close(g_split, g_whole, rtol=1e-4, atol=1e-7)
