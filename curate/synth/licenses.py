"""Known generator licenses whose terms reach the models you train on their outputs.

A small, hand-kept table, not legal advice: it exists so that a synth run says loudly,
and records in the dataset's lineage, when the generator's terms forbid or attach
conditions to training other models on its outputs. Three kinds:

- `prohibits`: outputs may not be used to improve other LLMs (Llama 2, Meta Llama 3,
  the Tongyi Qianwen license of Qwen 1/1.5 and Qwen2-72B, OpenAI's terms of use).
- `conditions`: allowed, with obligations that follow the trained model (Llama 3.1+ and 4:
  "Built with Llama" and a name beginning with "Llama"; Gemma: a model trained on Gemma
  outputs is a "Model Derivative" under the Gemma Terms of Use; Qwen LICENSE AGREEMENT:
  "Built with Qwen" / "Improved using Qwen").
- `non-commercial`: research use only, outputs included (Qwen Research License, Mistral
  Research License, Mistral AI Non-Production License, CC BY-NC models and data).

The license is found, in order, from: what the user declares (`--generator-license`), the
YAML front matter of a local model folder's README.md (`license:` / `license_name:` as on
the Hugging Face hub), then the model id. Apache-2.0, MIT and other permissive licenses
are simply recorded.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROHIBITS, CONDITIONS, NON_COMMERCIAL, PERMISSIVE = "prohibits", "conditions", "non-commercial", "permissive"


@dataclass(frozen=True)
class LicenseTerms:
    id: str
    name: str
    kind: str  # prohibits | conditions | non-commercial | permissive
    terms: str  # what applies to training on the outputs
    url: str

    @property
    def restricts_training(self) -> bool:
        return self.kind != PERMISSIVE


_LLAMA_31 = ("allowed, but a model trained on the outputs and distributed must have a name beginning with "
             "\"Llama\" and show \"Built with Llama\"; the Acceptable Use Policy applies")
KNOWN: dict[str, LicenseTerms] = {t.id: t for t in (
    LicenseTerms("llama2", "Llama 2 Community License", PROHIBITS,
                 "section 1.b.v: the outputs may not be used to improve any other large language model "
                 "(excluding Llama 2 and its derivatives)", "https://ai.meta.com/llama/license/"),
    LicenseTerms("llama3", "Meta Llama 3 Community License", PROHIBITS,
                 "section 1.b.v: the outputs may not be used to improve any other large language model "
                 "(excluding Meta Llama 3 and its derivatives)", "https://www.llama.com/llama3/license/"),
    LicenseTerms("llama3.1", "Llama 3.1 Community License", CONDITIONS, _LLAMA_31,
                 "https://www.llama.com/llama3_1/license/"),
    LicenseTerms("llama3.2", "Llama 3.2 Community License", CONDITIONS, _LLAMA_31,
                 "https://www.llama.com/llama3_2/license/"),
    LicenseTerms("llama3.3", "Llama 3.3 Community License", CONDITIONS, _LLAMA_31,
                 "https://www.llama.com/llama3_3/license/"),
    LicenseTerms("llama4", "Llama 4 Community License", CONDITIONS, _LLAMA_31,
                 "https://www.llama.com/llama4/license/"),
    LicenseTerms("gemma", "Gemma Terms of Use", CONDITIONS,
                 "a model trained on synthetic outputs of Gemma is a \"Model Derivative\": the Gemma Terms and the "
                 "Prohibited Use Policy apply to it and must be passed on when it is distributed",
                 "https://ai.google.dev/gemma/terms"),
    LicenseTerms("tongyi-qianwen", "Tongyi Qianwen License Agreement", PROHIBITS,
                 "section 5.b: the Materials or any output may not be used to improve any other large language "
                 "model (excluding Tongyi Qianwen and its derivatives); over 100M monthly users needs a license",
                 "https://github.com/QwenLM/Qwen/blob/main/Tongyi%20Qianwen%20LICENSE%20AGREEMENT"),
    LicenseTerms("qwen", "Qwen License Agreement", CONDITIONS,
                 "a model created, trained or improved with the outputs and distributed must show \"Built with "
                 "Qwen\" or \"Improved using Qwen\"; over 100M monthly users needs a license",
                 "https://huggingface.co/Qwen/Qwen2.5-72B-Instruct/blob/main/LICENSE"),
    LicenseTerms("qwen-research", "Qwen Research License Agreement", NON_COMMERCIAL,
                 "non-commercial research and evaluation only, outputs included; a model built with them must show "
                 "\"Built with Qwen\" or \"Improved using Qwen\"",
                 "https://huggingface.co/Qwen/Qwen2.5-3B-Instruct/blob/main/LICENSE"),
    LicenseTerms("mrl", "Mistral AI Research License", NON_COMMERCIAL,
                 "research and non-commercial use only; models derived from the outputs fall under the same terms",
                 "https://mistral.ai/licenses/MRL-0.1.md"),
    LicenseTerms("mnpl", "Mistral AI Non-Production License", NON_COMMERCIAL,
                 "testing, research and evaluation only, no production or commercial use",
                 "https://mistral.ai/licenses/MNPL-0.1.md"),
    LicenseTerms("cc-by-nc-4.0", "CC BY-NC 4.0", NON_COMMERCIAL,
                 "non-commercial use only, with attribution", "https://creativecommons.org/licenses/by-nc/4.0/"),
    LicenseTerms("cc-by-nc-sa-4.0", "CC BY-NC-SA 4.0", NON_COMMERCIAL,
                 "non-commercial use only, with attribution, shared alike",
                 "https://creativecommons.org/licenses/by-nc-sa/4.0/"),
    LicenseTerms("openai-terms", "OpenAI Terms of Use", PROHIBITS,
                 "outputs may not be used to develop models that compete with OpenAI",
                 "https://openai.com/policies/terms-of-use"),
)}
PERMISSIVE_IDS = {"apache-2.0", "mit", "bsd-3-clause", "bsd-2-clause", "cc-by-4.0", "cc-by-sa-4.0", "cc0-1.0",
                  "openrail", "bigscience-openrail-m", "deepseek", "unlicense"}

# (pattern on the lower-cased model id, license id); the first match wins.
MODEL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), lid) for p, lid in (
    (r"llama-?2", "llama2"),
    (r"llama-?3\.1", "llama3.1"),
    (r"llama-?3\.2", "llama3.2"),
    (r"llama-?3\.3", "llama3.3"),
    (r"llama-?3(?![.\d])", "llama3"),
    (r"llama-?4", "llama4"),
    (r"gemma", "gemma"),
    (r"qwen2\.5-(vl-)?3b", "qwen-research"),
    (r"qwen-1_8b", "qwen-research"),
    (r"qwen2\.5-(vl-)?72b", "qwen"),
    (r"qwen2-72b", "tongyi-qianwen"),
    (r"qwen1\.5-", "tongyi-qianwen"),
    (r"qwen-(7b|14b|72b)", "tongyi-qianwen"),
    (r"mistral-large|ministral-8b|pixtral-large", "mrl"),
    (r"codestral-22b|codestral-2[0-9]{3}", "mnpl"),
    (r"c4ai-command|aya-(23|expanse|101)", "cc-by-nc-4.0"),
    (r"^(gpt-(3\.5|4|5)|o[134](-|$)|chatgpt)", "openai-terms"),
))
_ALIASES = {"llama-2": "llama2", "llama-3": "llama3", "llama3.0": "llama3", "llama-3.1": "llama3.1",
            "llama-3.2": "llama3.2", "llama-3.3": "llama3.3", "llama-4": "llama4", "qwen-license": "qwen",
            "tongyi-qianwen-license-agreement": "tongyi-qianwen", "tongyi-qianwen-research": "qwen-research",
            "qwen-research-license": "qwen-research", "mistral-research-license": "mrl",
            "mistral-ai-research-license": "mrl"}


@dataclass(frozen=True)
class GeneratorLicense:
    """The license found for a generator, and where it was found."""

    id: str | None  # None: unknown
    source: str  # declared | model card | model id | host | unknown
    terms: LicenseTerms | None = None

    @property
    def warning(self) -> str | None:
        if self.terms is None or not self.terms.restricts_training:
            return None
        verb = {PROHIBITS: "forbids", CONDITIONS: "attaches conditions to",
                NON_COMMERCIAL: "limits to non-commercial use"}[self.terms.kind]
        return (f"the generator's license ({self.terms.name}) {verb} training other models on its outputs: "
                f"{self.terms.terms}. See {self.terms.url}")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "source": self.source}
        if self.terms is not None:
            out.update(name=self.terms.name, kind=self.terms.kind, url=self.terms.url)
        return out


def normalize(license_id: str) -> str:
    key = license_id.strip().lower().replace(" ", "-").replace("_", "-")
    return _ALIASES.get(key, key)


def lookup(license_id: str | None) -> LicenseTerms | None:
    if not license_id:
        return None
    key = normalize(license_id)
    if key in KNOWN:
        return KNOWN[key]
    if key in PERMISSIVE_IDS:
        return LicenseTerms(key, license_id, PERMISSIVE, "no restriction on training with the outputs", "")
    return None


def model_card_license(folder: Path) -> str | None:
    """`license_name` (for `license: other`) or `license` from a README.md's YAML front matter."""
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    import yaml

    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError:
        return None
    if not isinstance(meta, dict):
        return None
    name, license_id = meta.get("license_name"), meta.get("license")
    if isinstance(license_id, list):
        license_id = license_id[0] if license_id else None
    if license_id == "other" and name:
        return str(name)
    return str(license_id) if license_id else (str(name) if name else None)


def from_model_id(model: str) -> str | None:
    lowered = model.lower()
    for pattern, license_id in MODEL_PATTERNS:
        if pattern.search(lowered):
            return license_id
    return None


def detect(model: str, declared: str | None = None, base_url: str | None = None) -> GeneratorLicense:
    """The generator's license: declared, else from its model card, else from its id (or the API host)."""
    if declared:
        return GeneratorLicense(normalize(declared), "declared", lookup(declared))
    folder = Path(model).expanduser()
    if folder.is_dir():
        found = model_card_license(folder)
        if found:
            return GeneratorLicense(normalize(found), "model card", lookup(found))
    if base_url and re.search(r"//api\.openai\.com(/|$|:)", base_url):
        return GeneratorLicense("openai-terms", "host", KNOWN["openai-terms"])
    name = folder.name if folder.is_dir() else model
    found = from_model_id(name)
    if found:
        return GeneratorLicense(found, "model id", KNOWN[found])
    return GeneratorLicense(None, "unknown")


def terms_as_dict(terms: LicenseTerms) -> dict[str, Any]:
    return asdict(terms)


def data_warning(license_text: str | None, what: str = "source data") -> str | None:
    """A warning when the license of the data a run starts from (seed tasks, a source dataset) is one that
    restricts what the synthesized data may be used for, e.g. CC BY-NC: the new rows derive from it."""
    terms = lookup(license_text) if license_text else None
    if terms is None or not terms.restricts_training:
        return None
    return f"the {what} is under {terms.name}: {terms.terms}; the synthesized rows derive from it. See {terms.url}"
