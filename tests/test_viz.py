"""minecp.viz: every helper draws the right number of panels, with the data it was given."""

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import minecp  # noqa: E402
from minecp import viz  # noqa: E402
from minecp.attention import record_attention  # noqa: E402
from minecp.masks import causal_rule, enhanced_rule, mask_matrix, segmented_context_rule  # noqa: E402
from minecp.tokenizer import ByteTokenizer  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def tiny(name, **overrides):
    torch.manual_seed(0)
    base = dict(vocab_size=32, seq_len=16, latent_len=6, d_model=16, n_heads=2, n_layers=2, num_segments=4,
                context_segments=2, compressed_len=5)
    base.update(overrides)
    return minecp.build_model(name, minecp.ModelConfig(**base)).eval()


def test_plot_mask_shows_the_mask_and_borders():
    mask = mask_matrix(enhanced_rule(4), 8)
    fig = viz.plot_mask(mask, title="enhanced", context_len=4, segment_len=2)
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert np.array_equal(np.asarray(ax.images[0].get_array()), mask.numpy())
    assert ax.get_xlabel() == "key position j" and ax.get_ylabel() == "query position i"
    # segment borders (grey, dashed) between positions 1|2, 3|4, 5|6 and the context border (red) at 3|4,
    # each drawn once vertically (x = border) and once horizontally (y = border)
    def borders(color, vertical):
        lines = [ln for ln in ax.lines if ln.get_color() == color]
        return sorted(float((ln.get_xdata() if vertical else ln.get_ydata())[0]) for ln in lines
                      if (ln.get_xdata()[0] == ln.get_xdata()[1]) == vertical)
    assert borders("#888888", True) == borders("#888888", False) == [1.5, 3.5, 5.5]
    assert borders("#c0392b", True) == borders("#c0392b", False) == [3.5]
    assert ax.get_title() == "enhanced"


def test_plot_mask_offsets_and_given_axes():
    fig, ax = plt.subplots()
    cross = mask_matrix(enhanced_rule(4), torch.arange(4, 8), torch.arange(8))
    out = viz.plot_mask(cross, ax=ax, q_offset=4)
    assert out is ax
    assert [t.get_text() for t in ax.get_yticklabels()][0] == "4"  # absolute query positions
    with pytest.raises(ValueError):
        viz.plot_mask(torch.ones(2, 2, 2, dtype=torch.bool))


def test_plot_masks_one_panel_per_mask():
    masks = {"a": mask_matrix(causal_rule(), 8), "b": mask_matrix(enhanced_rule(4), 8),
             "c": (mask_matrix(segmented_context_rule(4, 2), 8), dict(segment_len=2))}
    fig = viz.plot_masks(masks, ncols=2)
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]


def test_plot_matrix_log_and_centered():
    m = torch.tensor([[0.0, 1.0], [10.0, 100.0]])
    fig = viz.plot_matrix(m, log=True, colorbar="log10", xlabel="x", ylabel="y")
    data = np.asarray(fig.axes[0].images[0].get_array(), dtype=float)
    assert np.isnan(data[0, 0]) and np.allclose(data.ravel()[1:], [0.0, 1.0, 2.0])
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    fig = viz.plot_matrix(torch.tensor([[-1.0, 3.0]]), centered=True)
    assert fig.axes[0].images[0].get_clim() == (-3.0, 3.0)


def test_plot_matrices_grid():
    fig = viz.plot_matrices({f"m{i}": torch.rand(3, 4) for i in range(5)}, ncols=3)
    assert len(fig.axes) == 5
    fig = viz.plot_matrices({"a": torch.rand(2, 2), "b": torch.rand(2, 2)}, colorbar="value")
    assert len(fig.axes) == 4


def test_plot_attention_labels():
    probs = torch.softmax(torch.randn(5, 5), -1)
    fig = viz.plot_attention(probs, q_labels=list("abcde"), k_labels=list("ab de"))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "\u2423", "d", "e"]
    assert np.allclose(np.asarray(ax.images[0].get_array()), probs.numpy())
    with pytest.raises(ValueError):
        viz.plot_attention(torch.rand(2, 3, 3))


@pytest.mark.parametrize("name", ["dense", "perceiver_ar", "compressed_perceiver_ar"])
def test_plot_attention_grid_layers_by_heads(name):
    model = tiny(name)
    with torch.no_grad(), record_attention() as maps:
        model(torch.randint(0, 32, (1, 16)))
    fig = viz.plot_attention_grid(maps, tokens=None if name.startswith("compressed") else list("abcdefghijklmnop"))
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 2 * 2  # layers x heads, plus one shared colour bar
    assert len(fig.axes) == len(panels) + 1
    assert panels[0].get_title() == "layer 1, head 1" and panels[-1].get_title() == "layer 2, head 2"
    fig = viz.plot_attention_grid(maps, layers=[1], heads=[0])
    assert len(fig.axes) == 1 + 1  # one panel and its colour bar
    if name == "perceiver_ar":  # layer 1: latent queries at absolute positions C.. = 10..
        fig = viz.plot_attention_grid(maps, window_len=16, layers=[0], heads=[0])
        assert fig.axes[0].get_yticklabels()[0].get_text() == "10"
    with pytest.raises(ValueError):
        viz.plot_attention_grid([])


def test_strips_curves_scaling_images():
    fig = viz.plot_loss_positions({"dense": torch.ones(8, dtype=torch.bool), "par": torch.arange(8) >= 4})
    assert np.array_equal(np.asarray(fig.axes[0].images[0].get_array()), [[1] * 8, [0] * 4 + [1] * 4])
    fig = viz.plot_curves({"a": [3.0, 2.0, 1.0, 0.5], "b": torch.tensor([1.0, 1.0, 1.0, 1.0])}, smooth=2,
                          hline=2.0, colors={"a": "red"})
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3 and np.allclose(lines[0].get_ydata(), [2.5, 1.5, 0.75])
    assert np.allclose(lines[0].get_xdata(), [2, 3, 4])
    fig = viz.plot_curves({"a": [1.0, 2.0]}, x=[10, 20])
    assert np.allclose(fig.axes[0].get_lines()[0].get_xdata(), [10, 20])
    fig = viz.plot_scaling([1, 2, 4], {"n2": [1, 4, 16], "n": [1, 2, 4]})
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    assert len(fig.axes[0].get_lines()) == 2
    fig = viz.plot_images(np.zeros((3, 1024, 3), np.uint8), ["x", "y", "z"], ncols=2)
    assert sum(1 for ax in fig.axes if ax.images) == 3 and fig.axes[0].images[0].get_array().shape == (32, 32, 3)
    with pytest.raises(ValueError):
        viz.plot_images(np.zeros((1, 1000, 3), np.uint8))


def test_explorers_build_sliders_and_redraw():
    ipywidgets = pytest.importorskip("ipywidgets")
    calls = []

    def draw(a, b):
        calls.append((a, b))
        fig, ax = plt.subplots()
        ax.plot([a, b])
        return fig

    box = viz.explorer(draw, a=(1, 3, 1), b=["x", "y"])
    assert isinstance(box, ipywidgets.HBox) and len(box.children) == 2
    assert calls == [(1, "x")]  # the static figure for the initial values
    box.children[0].value = 3
    assert calls[-1] == (3, "x")  # moving a slider redraws

    model = tiny("dense")
    with torch.no_grad(), record_attention() as maps:
        model(torch.randint(0, 32, (1, 16)))
    box = viz.attention_explorer(maps, tokens=list("abcdefghijklmnop"))
    layer, head = box.children
    assert (layer.min, layer.max, head.min, head.max) == (1, 2, 1, 2)
    box = viz.rule_explorer(lambda C: mask_matrix(enhanced_rule(C), 8), C=(2, 6, 2),
                            plot_kwargs=lambda C: dict(context_len=C))
    assert box.children[0].max == 6


def test_influence_map_is_exactly_the_reachable_set():
    model = tiny("dense")
    idx = torch.randint(0, 32, (1, 16))
    infl = viz.influence_map(model, idx, layer=1)
    assert infl.shape == (16, 16)
    assert torch.equal(infl > 0, mask_matrix(causal_rule(), 16))
    par = tiny("perceiver_ar")
    assert viz.influence_map(par, idx, layer=2).shape == (6, 16)  # later layers: the M latents
    seg = tiny("segmented_perceiver_ar")
    infl = viz.influence_map(seg, idx, layer=1)
    assert torch.equal(infl[:10, :10] > 0, mask_matrix(segmented_context_rule(10, 5), 10))
    with pytest.raises(ValueError):
        viz.influence_map(model, idx, layer=3)
    with pytest.raises(ValueError):
        viz.influence_map(model, idx[0], layer=1)


def test_token_pieces():
    text = "héllo, world"
    pieces = viz.token_pieces(ByteTokenizer(), text)
    assert len(pieces) == len(text.encode()) and "".join(p for p in pieces if p != "\ufffd") == "hllo, world"
