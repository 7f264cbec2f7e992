"""replace_gru, and Keras 3 interop checked against real Keras running on its torch backend."""

import numpy as np
import pytest
import torch
from torch import nn

import gru_triton
from tests.helpers import DEVICE, assert_close


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.GRU(3, 8, 2, batch_first=True, bidirectional=True, dropout=0.0)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(16, 5), nn.GRUCell(5, 6))])
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        out, _ = self.encoder(x)
        h = self.blocks[0](out[:, -1])
        return self.head(h)


def test_replace_gru_swaps_in_place_and_keeps_everything(triton_backend):
    model = _Model().to(DEVICE).eval()
    x = torch.randn(4, 5, 3, device=DEVICE)
    before = model(x)
    params_before = {name: p for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []
    model.encoder.register_forward_hook(lambda *a: calls.append("hook"))

    assert gru_triton.replace_gru(model) is model
    assert type(model.encoder) is gru_triton.GRU
    assert type(model.blocks[0][1]) is gru_triton.GRUCell
    assert not model.encoder.training and model.encoder.batch_first
    assert {name: p for name, p in model.named_parameters()}.keys() == params_before.keys()
    assert all(p is params_before[name] for name, p in model.named_parameters())
    after = model(x)
    assert calls == ["hook"]
    assert_close(after, before, what="model output")

    after.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    weight_before = model.encoder.weight_hh_l0.detach().clone()
    optimizer.step()  # the optimizer built before the swap updates the swapped modules
    assert not torch.equal(model.encoder.weight_hh_l0, weight_before)


def test_replace_gru_on_a_bare_module_and_in_training_mode(triton_backend):
    gru = nn.GRU(3, 4).to(DEVICE, torch.float64)
    new = gru_triton.replace_gru(gru)
    assert type(new) is gru_triton.GRU and new.training
    assert new.weight_hh_l0.dtype == torch.float64 and new.weight_hh_l0 is gru.weight_hh_l0
    x = torch.randn(5, 2, 3, device=DEVICE, dtype=torch.float64)
    assert_close(new(x)[0], gru(x)[0], torch.float64, "output")
    mine = gru_triton.GRU(3, 4)
    assert gru_triton.replace_gru(mine) is mine


# ---------------------------------------------------------------------------------------
# Keras 3
# ---------------------------------------------------------------------------------------

keras = pytest.importorskip("keras")


def _keras_gru(units, input_size, **kwargs):
    layer = keras.layers.GRU(units, return_sequences=True, return_state=True, **kwargs)
    layer.build((None, None, input_size))
    rng = np.random.default_rng(5)
    # Non-zero biases, so that a bias in the wrong place shows.
    layer.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5 for w in layer.get_weights()])
    return layer


def _keras_run(layer, x):
    sequences, state = layer(x.cpu().numpy())
    as_torch = lambda t: torch.as_tensor(keras.ops.convert_to_numpy(t))
    return as_torch(sequences), as_torch(state)


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_from_keras_matches_keras(reset_after, use_bias, triton_backend):
    layer = _keras_gru(7, 5, reset_after=reset_after, use_bias=use_bias)
    x = torch.randn(3, 6, 5)
    sequences, state = _keras_run(layer, x)
    ours = gru_triton.from_keras(layer, device=DEVICE)
    assert ours.batch_first and ours.reset_after == reset_after and ours.bias == use_bias
    output, h_n = ours(x.to(DEVICE))
    assert_close(output.cpu(), sequences, what="return_sequences output")
    assert_close(h_n[0].cpu(), state, what="return_state state")


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_to_keras_matches_ours(reset_after, triton_backend):
    ours = gru_triton.GRU(4, 9, batch_first=True, reset_after=reset_after).to(DEVICE)
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.5)
    layer = gru_triton.to_keras(ours, return_sequences=True, return_state=True)
    x = torch.randn(2, 5, 4)
    sequences, state = _keras_run(layer, x)
    output, h_n = ours(x.to(DEVICE))
    assert_close(sequences, output.cpu(), what="Keras output")
    assert_close(state, h_n[0].cpu(), what="Keras state")
    back = gru_triton.from_keras(layer)
    x = x.to(DEVICE)
    assert_close(back.to(DEVICE)(x)[0], output, what="round trip")


UNSUPPORTED = {
    "activation": dict(activation="relu"),
    "recurrent_activation": dict(recurrent_activation="hard_sigmoid"),
    "go_backwards": dict(go_backwards=True),
    "recurrent_dropout": dict(recurrent_dropout=0.2),
    "dropout": dict(dropout=0.1),
}


@pytest.mark.parametrize("option", UNSUPPORTED)
def test_from_keras_names_unsupported_options(option):
    layer = keras.layers.GRU(4, **UNSUPPORTED[option])
    layer.build((None, None, 3))
    with pytest.raises(ValueError, match=f"option {option}="):
        gru_triton.from_keras(layer)


def test_keras_interop_refuses_what_it_cannot_map():
    with pytest.raises(ValueError, match="build it"):
        gru_triton.from_keras(keras.layers.GRU(4))
    with pytest.raises(TypeError, match="keras.layers.GRU"):
        gru_triton.from_keras(keras.layers.LSTM(4))
    with pytest.raises(ValueError, match="one layer, one direction"):
        gru_triton.to_keras(gru_triton.GRU(3, 4, num_layers=2))
    with pytest.raises(ValueError, match="units comes from the module"):
        gru_triton.to_keras(gru_triton.GRU(3, 4), units=5)
