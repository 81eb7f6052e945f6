"""``curves.png``: loss and accuracy per epoch, train and validation (matplotlib, imported
when drawn)."""
from __future__ import annotations

from pathlib import Path

from ..fsutil import atomic_path


def plot_curves(records: list, path: Path, title: str = "") -> None:
    """Loss and accuracy per epoch, train and validation, as a PNG (written atomically)."""
    import matplotlib.pyplot as plt

    fig = curves_figure(records, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def curves_figure(records: list, title: str = ""):
    """The figure of :func:`plot_curves`. Every epoch is a marker, so that a run of one
    epoch (a single point, which draws no line) shows too."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    style = {"marker": "o", "markersize": 4}
    ax_loss.plot(epochs, [r["train_loss"] for r in records], label="train", **style)
    ax_loss.plot(epochs, [r["val_loss"] for r in records], label="val", **style)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.plot(epochs, [r["train_acc"] for r in records], label="train", **style)
    ax_acc.plot(epochs, [r["val_acc"] for r in records], label="val", **style)
    if "val_acc_raw" in records[0]:
        ax_acc.plot(epochs, [r["val_acc_raw"] for r in records], label="val (no EMA)",
                    linestyle="--", **style)
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    return fig
