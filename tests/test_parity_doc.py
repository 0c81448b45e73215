"""docs/torch-parity.md: its tables are written from the specs and torch, and are current."""

from __future__ import annotations

import inspect

import pytest

torch = pytest.importorskip("torch")

from symopt import parity_doc  # noqa: E402
from symopt.api_matrix import defaults, flag_matrix  # noqa: E402
from symopt.spec.api import FRAMEWORK_ARGUMENTS  # noqa: E402


def test_the_document_is_current():
    text = parity_doc.DOC.read_text()
    assert parity_doc.render(text) == text, "run: python -m symopt.parity_doc --write"


def test_every_torch_optim_optimizer_is_listed():
    table = parity_doc.classes_table()
    names = parity_doc.torch_optimizers()
    assert {"torch.optim.Adam", "torch.optim.SGD", "torch.optim.LBFGS"} <= set(names)
    for name in names:
        assert f"| `{name}` |" in table
    assert "| `torch.optim.LBFGS` | no spec |" in table
    assert "| `torch.optim.Adam` | [`adam`](../specs/adam.toml) | `symopt_torch.Adam` |" in table


@pytest.mark.parametrize("cls", sorted(parity_doc.drop_ins()))
def test_the_signature_shown_is_torchs(cls):
    """Names, order, keyword-only marker and defaults of every argument are torch's."""
    spec = parity_doc.drop_ins()[cls]
    theirs = list(inspect.signature(parity_doc.torch_class(spec).__init__).parameters.values())
    theirs = theirs[2:]  # self, params
    given = defaults(spec)
    ours = [
        (a.name, a.keyword_only, given.get(a.name, FRAMEWORK_ARGUMENTS.get(a.name)))
        for a in spec.family.api.arguments
    ]
    assert ours == [(p.name, p.kind is p.KEYWORD_ONLY, p.default) for p in theirs]
    shown = parity_doc.signature(spec)
    assert shown.startswith(f"{spec.class_name}(") and shown.count("*") == (
        1 if any(k for _, k, _ in ours) else 0
    )


def test_adam_arguments_say_what_covers_them():
    section = parity_doc.arguments_section(parity_doc.drop_ins()["torch.optim.Adam"])
    assert "| `betas` | tuple of hyperparameters | `beta1`, `beta2` |" in section
    assert "| `amsgrad` | flag | `amsgrad` |" in section
    assert "AMSGrad); selects a variant |" in section
    assert (
        "| `weight_decay` | hyperparameter | `weight_decay` | weight decay; 0 and nonzero"
        in section
    )
    assert (
        "| `maximize` | framework argument |  | runtime: the update runs on the negated" in section
    )
    assert "`max_exp_avg_sq` (`vmax`, only when amsgrad)" in section
    assert "amsgrad=False, *,\n    foreach=None" in section  # torch's keyword-only arguments


def test_choices_constants_fixed_flags_and_machine_epsilon():
    specs = parity_doc.drop_ins()
    muon = parity_doc.arguments_section(specs["torch.optim.Muon"])
    assert "| `ns_steps` | constant |  | 5 only: any other value is refused (ValueError) |" in muon
    assert (
        "| `adjust_lr_fn` | choice (a string that sets flags) | `match_rms_adamw` | "
        "`'original'` (and None) sets match_rms_adamw = false; "
        "`'match_rms_adamw'` sets match_rms_adamw = true |"
    ) in muon
    adamw = parity_doc.arguments_section(specs["torch.optim.AdamW"])
    assert "The class fixes the flag `decoupled_weight_decay` at True" in adamw
    adafactor = parity_doc.arguments_section(specs["torch.optim.Adafactor"])
    assert "eps=(None, 0.001)" in adafactor
    assert "None: the machine epsilon of the parameters' dtype" in adafactor
    sgd = parity_doc.arguments_section(specs["torch.optim.SGD"])
    assert "torch.optim.SGD keeps no `step`" in sgd
    assert "keeps no `step`" not in parity_doc.arguments_section(specs["torch.optim.Adam"])


def test_the_matrix_names_the_kernel_of_every_row_and_torchs_refusals():
    spec = parity_doc.drop_ins()["torch.optim.SGD"]
    section = parity_doc.matrix_section(spec)
    rows = {line.split(" | ")[0][2:]: line for line in section.splitlines() if line[:2] == "| "}
    assert set(flag_matrix(spec)[i].label for i in range(len(flag_matrix(spec)))) <= set(rows)
    assert rows["plain"] == "| plain | (defaults) | `_sgd` | accepts |"
    assert (
        "| `momentum=0.1, nesterov=True` | `_sgd__nesterov__momentum` | accepts |"
        in (rows["nesterov+momentum=0.1"])
    )
    refused = "| - | refuses: Nesterov momentum requires a momentum and zero dampening |"
    assert rows["nesterov"].endswith(refused)
    assert rows["nesterov+momentum=0.1+dampening=0.1"].endswith(refused)
    # dampening without momentum changes nothing: the plain kernel runs it
    assert rows["dampening=0.1"] == "| dampening=0.1 | `dampening=0.1` | `_sgd` | accepts |"
    assert rows["maximize"] == "| maximize | `maximize=True` | `_sgd` | accepts |"


def test_check_and_write(tmp_path, capsys):
    doc = tmp_path / "parity.md"
    begin, end = parity_doc.BEGIN, parity_doc.END
    blocks = "".join(
        f"text {n}\n{begin.format(name=n)}\nold\n{end.format(name=n)}\n" for n in parity_doc.TABLES
    )
    doc.write_text("# title\n" + blocks + "end\n")
    assert parity_doc.main(["--check"], doc=doc) == 1
    assert "stale" in capsys.readouterr().err
    assert parity_doc.main(["--write"], doc=doc) == 0
    text = doc.read_text()
    assert text.startswith("# title\ntext classes\n") and text.endswith("end\n")
    assert "\nold\n" not in text and "| `torch.optim.SGD` |" in text
    assert parity_doc.main(["--check"], doc=doc) == 0
    doc.write_text("# no markers\n")
    with pytest.raises(ValueError, match="expected one block"):
        parity_doc.main(["--check"], doc=doc)
