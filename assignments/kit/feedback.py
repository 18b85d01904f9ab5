"""Comparisons that fail with a message a student can act on ("yours vs reference").

A bare ``assert torch.allclose(a, b)`` tells a student only *that* something is wrong. These
helpers say *what*: the shapes, the dtype, the largest error and the first position where the
two tensors differ, whether there are NaNs or infinities — and for masks and attention maps they
keep both pictures so :func:`assignments.kit.check` can draw expected beside yours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:   # torch is imported where it is used: a test file without torch starts fast
    import torch


class GradingFailure(AssertionError):
    """A graded comparison failed. ``str(err)`` is the message shown to the student.

    Attributes:
        pictures: list of ``(title, expected, yours)`` 2-D tensors that ``check()`` draws side by
            side with the differing cells marked (empty when there is nothing to draw).
    """

    def __init__(self, message: str, pictures: list | None = None):
        super().__init__(message)
        self.pictures = list(pictures or [])


def _fmt(x) -> str:
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        return f"{x:.6g}"
    return repr(x)


def _as_tensor(x, what: str, role: str) -> "torch.Tensor":
    import torch

    if isinstance(x, torch.Tensor):
        return x
    raise GradingFailure(f"{what}: {role} should be a torch.Tensor, got {type(x).__name__}"
                         + (" (did the function forget to `return`?)" if x is None else ""))


def _first_index(flat_bad: "torch.Tensor", shape) -> tuple:
    import torch

    i = int(flat_bad.nonzero()[0])
    return tuple(int(v) for v in torch.unravel_index(torch.tensor(i), shape)) if len(shape) else ()


def compare_tensors(yours, reference, *, what: str, atol: float = 1e-6, rtol: float = 1e-5,
                    picture: bool = False, check_dtype: bool = True) -> None:
    """Raise :class:`GradingFailure` unless ``yours`` matches ``reference`` within tolerance.

    Passes when ``|yours - reference| <= atol + rtol * |reference|`` everywhere, with NaN and
    infinities required in the same places (an ``-inf`` where the reference has ``-inf`` is
    fine; a NaN anywhere in yours where the reference has none is not).

    Args:
        yours: the student's tensor.
        reference: the expected tensor (from minecp or PyTorch).
        what: short name shown in the message, e.g. ``"attention(q, k, v)"``.
        atol, rtol: tolerances (pick them by docs/testing.md: about 2x the error of the
            same-precision reference, plus a rounding floor).
        picture: also attach the last two dimensions of the first batch element (for example an
            attention-probability map) so ``check()`` draws expected beside yours.
        check_dtype: require the same dtype.

    Raises:
        GradingFailure: with the shapes, dtype, max abs error, the first index that differs and
            both values there, and whether yours has NaN/inf.
    """
    import torch

    yours = _as_tensor(yours, what, "your result")
    reference = _as_tensor(reference, what, "the reference")
    if tuple(yours.shape) != tuple(reference.shape):
        raise GradingFailure(f"{what}: shape {tuple(yours.shape)} (yours) vs "
                             f"{tuple(reference.shape)} (reference)")
    if check_dtype and yours.dtype != reference.dtype:
        raise GradingFailure(f"{what}: dtype {yours.dtype} (yours) vs {reference.dtype} (reference)")
    y = yours.detach().to("cpu", torch.float64)
    r = reference.detach().to("cpu", torch.float64)
    same_special = (torch.isnan(y) & torch.isnan(r)) | (torch.isinf(y) & torch.isinf(r) & (y == r))
    finite = torch.isfinite(y) & torch.isfinite(r)
    err = torch.where(finite, (y - r).abs(), torch.zeros_like(y))
    bad = torch.where(same_special, torch.zeros_like(y, dtype=torch.bool),
                      ~finite | (err > atol + rtol * r.abs()))
    if not bool(bad.any()):
        return
    idx = _first_index(bad.flatten(), y.shape)
    lines = [f"{what}: {int(bad.sum())} of {bad.numel()} values differ "
             f"(shape {tuple(y.shape)}, dtype {yours.dtype}, atol={atol:g}, rtol={rtol:g})",
             f"  max abs error {float(err.max()):.3g} (over finite values)",
             f"  first difference at index {list(idx)}: yours {_fmt(float(y[idx]))}, "
             f"reference {_fmt(float(r[idx]))}"]
    ratio = _constant_ratio(y, r, finite)
    if ratio is not None:
        root = ratio * ratio
        hint = (f" = 1/sqrt({1 / root:.4g})" if ratio < 1 and abs(1 / root - round(1 / root)) < 1e-3
                else f" = sqrt({root:.4g})" if ratio > 1 and abs(root - round(root)) < 1e-3 else "")
        lines.append(f"  yours = reference x {ratio:.6g}{hint} everywhere: a missing or extra scale factor?")
    n_nan, n_inf = int(torch.isnan(y).sum()), int(torch.isinf(y).sum())
    r_nan, r_inf = int(torch.isnan(r).sum()), int(torch.isinf(r).sum())
    if n_nan or n_inf or r_nan or r_inf:
        lines.append(f"  NaN: {n_nan} in yours, {r_nan} in the reference; "
                     f"inf: {n_inf} in yours, {r_inf} in the reference")
    pictures = []
    if picture and y.dim() >= 2:
        lead = (0,) * (y.dim() - 2)
        pictures.append((what, r[lead], y[lead]))
        lines.append(f"  (picture: [{', '.join(['0'] * len(lead) + [':', ':'])}] "
                     "of expected and yours)")
    raise GradingFailure("\n".join(lines), pictures)


def _constant_ratio(y, r, finite) -> float | None:
    """The factor c when yours == c * reference at every finite, non-tiny entry (c != 1), else None.

    A constant factor is the signature of a scale mistake (a missing 1/sqrt(d), a factor 2),
    worth saying in words rather than as a first differing value.
    """
    import torch

    keep = finite & (r.abs() > 1e-6 * max(1.0, float(r[finite].abs().max()) if bool(finite.any()) else 1.0))
    if int(keep.sum()) < 2:
        return None
    ratios = y[keep] / r[keep]
    c = float(ratios.median())
    if not (c == c) or abs(c - 1) < 1e-3 or c == 0:
        return None
    return c if bool(((ratios - c).abs() <= 1e-4 * abs(c)).all()) else None


def mask_text(expected: "torch.Tensor", yours: "torch.Tensor", max_side: int = 16) -> str:
    """Two small bool masks as text, side by side: ``#`` visible, ``.`` hidden, ``X`` differs.

    Rows are queries, columns keys. Only drawn when both sides are at most ``max_side``.
    """
    if expected.dim() != 2 or max(expected.shape) > max_side:
        return ""
    width = max(expected.shape[1], len("expected"))
    rows = [f"  {'expected'.ljust(width)}  yours (X = differs)"]
    for i in range(expected.shape[0]):
        e = "".join("#" if expected[i, j] else "." for j in range(expected.shape[1]))
        y = "".join(("#" if yours[i, j] else ".") if bool(yours[i, j]) == bool(expected[i, j])
                    else "X" for j in range(expected.shape[1]))
        rows.append(f"  {e.ljust(width)}  {y}")
    return "\n".join(rows)


def compare_masks(yours, expected, *, what: str, max_cells_listed: int = 5) -> None:
    """Raise :class:`GradingFailure` unless the bool mask ``yours`` equals ``expected``.

    Args:
        yours: the student's mask, bool ``[..., Tq, Tk]`` (True = query may see key).
        expected: the reference mask, same shape.
        what: short name shown in the message, e.g. ``"causal_mask(7)"``.
        max_cells_listed: how many differing (query, key) cells to list.

    Raises:
        GradingFailure: with the shapes or dtype if they differ, else the number of differing
            cells, the first few as (query, key) with expected/yours, a text drawing for small
            masks, and both masks attached for ``check()``'s picture.
    """
    import torch

    yours = _as_tensor(yours, what, "your mask")
    expected = _as_tensor(expected, what, "the expected mask")
    if tuple(yours.shape) != tuple(expected.shape):
        raise GradingFailure(f"{what}: shape {tuple(yours.shape)} (yours) vs "
                             f"{tuple(expected.shape)} (expected)")
    if yours.dtype != torch.bool:
        raise GradingFailure(f"{what}: dtype {yours.dtype} (yours) vs torch.bool (expected: "
                             "True where the query may see the key)")
    diff = (yours.cpu() != expected.cpu())
    if not bool(diff.any()):
        return
    cells = diff.nonzero().tolist()
    lines = [f"{what}: {len(cells)} of {diff.numel()} cells differ (shape {tuple(yours.shape)})"]
    lines += [f"  query {c[-2]}, key {c[-1]}{' (index ' + str(c[:-2]) + ')' if len(c) > 2 else ''}: "
              f"expected {'visible' if expected[tuple(c)] else 'hidden'}, "
              f"yours {'visible' if yours[tuple(c)] else 'hidden'}" for c in cells[:max_cells_listed]]
    if len(cells) > max_cells_listed:
        lines.append(f"  ... and {len(cells) - max_cells_listed} more")
    lead = (0,) * (yours.dim() - 2)
    e2, y2 = expected.cpu()[lead], yours.cpu()[lead]
    text = mask_text(e2, y2)
    if text:
        lines.append(text)
    raise GradingFailure("\n".join(lines), [(what, e2, y2)])
