"""The EGNN layer's fast path (per-atom factorisation of the edge MLPs' first layers, edge
chunks, in-place activations while sampling) against the plain layer, which multiplies the
concatenated edge input on every edge: same outputs and gradients in float32 on random
graphs, in both coordinate modes, and the same outputs of the shipped weights."""
from importlib import resources

import pytest
import torch

from molgen.diffusion.spaces import POS, MoleculeSpace
from molgen.nn.egnn import EGNN, EquivariantConv
from molgen.nn.graphs import fully_connected_edges, radius_edges

from molecule_helpers import F, gen, shuffled_space, unit_scale


def plain_conv(conv: EquivariantConv, h, x, edge_index, edge_attr):
    """The reference: the layer as written in its docstring, on the concatenation
    [h_i, h_j, ‖x_i − x_j‖², a_ij] of every edge, messages summed with scatter-add."""
    source, target = edge_index
    diff = x[target] - x[source]
    d2 = diff.square().sum(-1, keepdim=True)
    unit = diff / ((d2 + 1e-8).sqrt() + 1)
    m = conv.edge_mlp(torch.cat([h[target], h[source], d2, edge_attr], -1))
    m = m * conv.gate(m)
    msg = torch.zeros_like(h).index_add(0, target, m)
    h_new = h + conv.node_mlp(torch.cat([h, msg], -1))
    if conv.coords_from == "message":
        s = conv.coord_mlp(m)
    else:  # EDM's EquivariantUpdate: the updated features, concatenated again
        s = conv.coord_mlp(torch.cat([h_new[target], h_new[source], d2, edge_attr], -1))
    shift = torch.zeros_like(x).index_add(0, target, unit * conv.coords_range * torch.tanh(s))
    return h_new, x + shift


def _graph(kind, seed):
    space = shuffled_space([1, 4, 9, 13, 7], seed=seed)
    pos = 1.5 * torch.randn(len(space.batch), POS, generator=gen(seed))
    if kind == "fully_connected":
        return space, pos, fully_connected_edges(space.batch, space.num_graphs)
    return space, pos, radius_edges(pos, space.batch, space.num_graphs, 2.5)


@pytest.mark.parametrize("coords_from", ["message", "nodes"])
@pytest.mark.parametrize("edge_dim", [0, 1, 5])
@pytest.mark.parametrize("kind", ["fully_connected", "radius"])
@pytest.mark.parametrize("chunk", [None, 7], ids=["one_chunk", "chunks_of_7"])
def test_factorised_layer_equals_the_plain_concatenation(coords_from, edge_dim, kind, chunk):
    hidden = 32
    space, x, edges = _graph(kind, seed=edge_dim)
    conv = unit_scale(EquivariantConv(hidden, edge_dim, 0.5, coords_from=coords_from, edge_chunk=chunk))
    h = torch.randn(len(x), hidden, generator=gen(1))
    attr = torch.randn(edges.shape[1], edge_dim, generator=gen(2))
    with torch.no_grad():  # the sampling path (in-place activations)
        ref_h, ref_x = plain_conv(conv, h, x, edges, attr)
        out_h, out_x = conv(h, x, edges, attr)
    assert float((out_x - x).abs().max()) > 0.1  # the positions do move
    torch.testing.assert_close(out_h, ref_h, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_x, ref_x, atol=1e-5, rtol=1e-5)

    # the training path: the same gradients (in float64, where sums over edges in another
    # order agree to ~1e-12)
    conv.double()

    def grads(forward):
        conv.zero_grad()
        hh, xx = h.double().requires_grad_(), x.double().requires_grad_()
        out_h, out_x = forward(conv, hh, xx, edges, attr.double())
        (out_h.sin().sum() + out_x.cos().sum()).backward()
        return [hh.grad, xx.grad] + [p.grad.clone() for p in conv.parameters()]

    for ref, got in zip(grads(plain_conv), grads(EquivariantConv.forward)):
        torch.testing.assert_close(got, ref, atol=1e-10, rtol=1e-10)


def test_a_layer_without_edges_only_updates_features():
    conv = unit_scale(EquivariantConv(8, 1, 1.0))
    h, x = torch.randn(3, 8, generator=gen(0)), torch.randn(3, POS, generator=gen(1))
    none = torch.zeros(2, 0, dtype=torch.long)
    out_h, out_x = conv(h, x, none, torch.zeros(0, 1))
    torch.testing.assert_close(out_h, plain_conv(conv, h, x, none, torch.zeros(0, 1))[0])
    assert torch.equal(out_x, x)


def test_the_egnn_and_its_parameter_names_are_unchanged(monkeypatch):
    """The whole denoiser equals the one built from plain layers, and its state dict has the
    plain layer's names and shapes (checkpoints written before the fast path load)."""
    space = MoleculeSpace.from_sizes([5, 12, 9])
    net = unit_scale(EGNN(F, hidden=32, layers=3)).eval()
    x = torch.randn(26, POS + F, generator=gen(3))
    t = torch.tensor([0.1, 0.5, 0.9])
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items() if k.startswith("convs.0.")}
    assert shapes == {"convs.0.edge_mlp.0.0.weight": (32, 66), "convs.0.edge_mlp.0.0.bias": (32,),
                      "convs.0.edge_mlp.0.2.weight": (32, 32), "convs.0.edge_mlp.0.2.bias": (32,),
                      "convs.0.gate.0.weight": (1, 32), "convs.0.gate.0.bias": (1,),
                      "convs.0.node_mlp.0.weight": (32, 64), "convs.0.node_mlp.0.bias": (32,),
                      "convs.0.node_mlp.2.weight": (32, 32), "convs.0.node_mlp.2.bias": (32,),
                      "convs.0.coord_mlp.0.weight": (32, 32), "convs.0.coord_mlp.0.bias": (32,),
                      "convs.0.coord_mlp.2.weight": (1, 32)}
    with torch.no_grad():
        fast = net(x, t, space=space)
        monkeypatch.setattr(EquivariantConv, "forward", plain_conv)
        torch.testing.assert_close(fast, net(x, t, space=space), atol=1e-5, rtol=1e-5)


def test_the_shipped_backbone_model_gives_the_plain_layers_output(monkeypatch):
    """molgen/proteins/weights/default.pt (EGNN layers with edge attributes, motif edges
    among them) loads into the fast layer and denoises as the plain layer does."""
    from molgen.train import load_trained

    path = resources.files("molgen.proteins") / "weights" / "default.pt"
    with resources.as_file(path) as file:
        trained = load_trained(file, task="backbones")
    net = trained.model
    space = MoleculeSpace.from_sizes([40, 64])
    x = space.project(torch.randn(104, POS, generator=gen(4)))
    t = torch.tensor([0.2, 0.7])
    cond = None if not net.cond_columns else torch.rand(2, net.cond_columns, generator=gen(5))
    with torch.no_grad():
        fast = net(x, t, cond, space=space)
        monkeypatch.setattr(EquivariantConv, "forward", plain_conv)
        torch.testing.assert_close(fast, net(x, t, cond, space=space), atol=1e-5, rtol=1e-5)


def test_coords_from_is_checked():
    with pytest.raises(ValueError, match="coords_from"):
        EquivariantConv(8, 1, 1.0, coords_from="edges")
