"""The embedded DAG end to end (at the toy size of tests/config/small.yaml): runs, is
complete, reruns exactly what changed, lints clean, and refuses a bad config before any job."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, UHCS24, copy_workflow, modules_reached

SMALL = REPO / "tests" / "config" / "small.yaml"
CONFIG = "config/test.yaml"


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir``; the test config unless ``args`` names another."""
    if "--configfile" not in args:
        args = ("--configfile", CONFIG, *args)
    return subprocess.run(
        ["snakemake", "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
    )


def planned_rules(result: subprocess.CompletedProcess) -> set[str]:
    """Rule names in the job-stats table of a dry run."""
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.M)} - {"job"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of the workflow with the embedded default run once."""
    root = copy_workflow(tmp_path_factory.mktemp("workflow"))
    config = yaml.safe_load(SMALL.read_text())
    config["reference"]["uhcs24"] = str(UHCS24) if UHCS24.is_dir() else None
    (root / CONFIG).write_text(yaml.safe_dump(config, allow_unicode=True))
    result = snakemake(root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_embedded_default_produces_every_output(workdir):
    out = workdir / "results" / "ci-steel"
    metadata = (out / "data" / "metadata.csv").read_text().splitlines()
    assert len(metadata) == 1 + 32
    assert (out / "split.csv").is_file() and (out / "tables" / "split-summary.md").is_file()
    assert (out / "figures" / "fig-a1-dataset.png").stat().st_size > 10_000
    if UHCS24.is_dir():
        assert (out / "figures" / "real-vs-synthetic.png").stat().st_size > 10_000
    rows = pd.read_parquet(out / "descriptors" / "truth.parquet")
    assert len(rows) == 32 and rows["area_fraction"].between(0, 1).all()
    assert (out / "tables" / "table4-losses.md").is_file()
    assert (out / "figures" / "fig7-segmentation-vgg16-jaccard.png").is_file()


def test_every_model_samples_every_validation_condition(workdir):
    out = workdir / "results" / "ci-steel"
    conditions = pd.read_csv(out / "conditions" / "validation.csv")
    assert set(conditions["split"]) == {"val_seen", "val_unseen"}
    for model, mode in [
        ("sd3-lora", "full_text"),
        ("sd3-lora", "parameter_only"),
        ("ddpm", "parameter_only"),
        ("stylegan-lite", "parameter_only"),
    ]:
        samples = pd.read_csv(out / "samples" / model / f"{mode}.csv")
        assert set(samples["label"]) == set(conditions["label"]), (model, mode)
        assert (samples.groupby("label").size() == 2).all()
        for path in samples["path"]:
            assert (out / "samples" / model / path).is_file()


def test_evaluation_tables_cover_every_generated_set(workdir):
    tables = workdir / "results" / "ci-steel" / "tables"
    headline = pd.read_csv(tables / "ground-truth-fidelity.csv")
    # the floors first (a second ground-truth draw with exact masks, then the same draw
    # through the segmenter), then sd3-lora × 2 modes, ddpm, stylegan-lite
    assert list(headline["model"].iloc[:2]) == [
        "ground truth (redraw)",
        "ground truth (redraw, segmented)",
    ]
    assert len(headline) == 6
    figures = workdir / "results" / "ci-steel" / "figures"
    for name in (
        "figB9-tsne",
        "fig5-samples",
        "fig9-segmented-samples",
        "fig14-correlation-envelopes",
    ):
        assert (figures / f"{name}.png").is_file() and (figures / f"{name}.pdf").is_file(), name
    assert (tables / "table-b2-baselines.csv").is_file()
    metrics = pd.read_csv(tables / "generative-metrics-long.csv")
    distribution = metrics[metrics["metric"] != "ssim"]  # SSIM compares pixels
    assert distribution["feature_extractor"].str.startswith("segmenter-encoder").all()
    r2 = pd.read_csv(workdir / "results" / "ci-volumes" / "tables" / "r2-samplers.csv")
    assert set(r2["sampler"]) == {"ddim", "ddpm"}


def test_tables_b1_and_b3_describe_the_configured_fine_tune(workdir):
    """Table B1 is the small config's sd3-lora entry; Table B3 counts its full-text fine-tune
    on the pre-trained tiny base, whose components add up to the overall row."""
    tables = workdir / "results" / "ci-steel" / "tables"
    b1 = pd.read_csv(tables / "table-b1-finetune.csv").set_index("hyperparameter")
    assert list(b1.columns) == ["sd3-lora"]  # the tiny base is no paper model
    assert b1.loc["Rank", "sd3-lora"] == "8" and b1.loc["Class images", "sd3-lora"] == "2"
    b3 = pd.read_csv(tables / "table-b3-parameters.csv").set_index("component")
    assert set(b3["model"]) == {"sd3-lora"} and set(b3["prompt_mode"]) == {"full_text"}
    parts = b3.drop(index="Overall")
    for column in ("total_M", "trainable_M"):
        assert abs(parts[column].sum() - b3.loc["Overall", column]) < 1e-5, column
    assert b3.loc["Parameter encoder (categorical + continuous)", "trainable_percent"] == 100
    assert b3.loc["T5", "trainable_M"] == 0 and b3.loc["VAE", "trainable_M"] == 0


def test_a_condition_table_yields_images_and_descriptors_of_every_model(workdir):
    """config/examples/conditions.csv (3 new conditions) through every model and mode: n = 2
    images per row, segmented and described, with the table's condition values."""
    out = workdir / "results" / "ci-steel" / "generated"
    wanted = pd.read_csv(workdir / "config" / "examples" / "conditions.csv")
    variables = list(wanted.columns)
    for model, mode in [
        ("sd3-lora", "full_text"),
        ("sd3-lora", "parameter_only"),
        ("ddpm", "parameter_only"),
        ("stylegan-lite", "parameter_only"),
    ]:
        folder = out / model / mode / "examples"
        rows = pd.read_csv(folder / "descriptors.csv")
        assert len(rows) == 3 * 2, (model, mode)
        assert (rows.groupby("label").size() == 2).all()
        got = rows[variables].drop_duplicates().sort_values("temperature", ignore_index=True)
        expected = wanted.sort_values("temperature", ignore_index=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        assert rows["area_fraction"].between(0, 1).all()
        assert (rows["pixel_size_um"] > 0).all()
        measured = rows[rows["n_particles"] > 0]  # a size needs a particle
        assert measured["mean_diameter_um"].map(math.isfinite).all()
        beyond = rows.loc[rows["temperature"] == 1050, "outside_training_range"]
        assert beyond.str.contains("temperature").all()  # 800-970 °C were trained on
        for path, image_id in zip(rows["path"], rows["id"], strict=True):
            assert (folder / path).is_file() and (folder / "masks" / f"{image_id}.png").is_file()
    prompts = pd.read_csv(out / "sd3-lora" / "full_text" / "examples" / "samples.csv")["prompt"]
    assert prompts.str.contains("850 °C <temp>").any()


def test_a_target_table_reports_measured_features_beside_the_targets(workdir):
    folder = workdir / "results" / "ci-volumes" / "generated" / "examples"
    targets = pd.read_csv(workdir / "config" / "examples" / "targets3d.csv")
    features = pd.read_csv(folder / "features.csv")
    assert len(features) == len(targets) == 3  # n_per_target 1
    for name in targets.columns:
        assert list(features[f"{name}_target"]) == list(targets[name])
        assert f"{name}_measured" in features
    assert features["vol_frac_D_measured"].between(0, 1).all()
    for name in ("phi", "chi", "log_time"):
        assert features[f"{name}_predicted"].map(math.isfinite).all()
    from microgen.volumes.hdf5 import read_features

    stored = read_features(folder / "volumes.h5")
    assert sorted(stored["name"]) == sorted(features["name"])
    assert stored["target_vol_frac_D"].notna().all()


def test_no_condition_tables_plan_no_table_jobs(workdir):
    def drop(config):
        del config["generate"]["condition_tables"], config["volumes"]["target_tables"]

    path = _variant(workdir, "no-tables", drop)
    result = snakemake(workdir, "-n", "--forceall", "--configfile", str(path))
    assert result.returncode == 0, result.stderr[-2000:]
    rules = planned_rules(result)
    assert "sample_model" in rules
    assert not rules & {"sample_condition_table", "sample_baseline_condition_table",
                        "describe_condition_table", "sample_target_table"}  # fmt: skip


def test_embedded_volumes_are_described_and_split_by_run(workdir):
    out = workdir / "results" / "ci-volumes" / "volumes"
    features = pd.read_parquet(out / "features.parquet")
    assert len(features) == 2 * 2 * 4
    assert {"ABS_f_D", "CT_f_D_tort1", "CT_f_A_tort1", "phi", "chi", "log_time"} <= set(features)
    split = pd.read_csv(out / "split.csv")
    assert split.groupby("run_id")["split"].nunique().max() == 1
    assert set(split["split"]) == {"train", "val"}


def test_second_run_has_nothing_to_do(workdir):
    result = snakemake(workdir, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def _variant(workdir: Path, name: str, change) -> Path:
    """A copy of the run's config with one change, as a config file."""
    config = yaml.safe_load((workdir / CONFIG).read_text())
    change(config)
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def test_split_parameter_reruns_the_split_not_the_generator(workdir):
    path = _variant(workdir, "split7", lambda c: c["split"].update(seed=7))
    result = snakemake(workdir, "-n", "--configfile", str(path))
    assert result.returncode == 0, result.stderr[-2000:]
    rules = planned_rules(result)
    assert "split_dataset" in rules and "plot_dataset_histograms" in rules
    # The validation set changes, so what is measured on it reruns; the data do not.
    assert "synthesize_dataset" not in rules and "simulate_volumes" not in rules


def test_generator_parameter_reruns_everything_downstream(workdir):
    path = _variant(workdir, "seed1", lambda c: c["dataset"]["synthetic"].update(seed=1))
    rules = planned_rules(snakemake(workdir, "-n", "--configfile", str(path)))
    assert {"synthesize_dataset", "split_dataset", "describe_masks"} <= rules


def planned_reasons(result: subprocess.CompletedProcess) -> dict[str, str]:
    """Rule name -> the reason line of its job(s) in a dry run."""
    reasons: dict[str, str] = {}
    for block in re.split(r"^(?:local)?rule ", result.stdout, flags=re.M)[1:]:
        name = block.split(":", 1)[0]
        reason = re.search(r"^\s*reason: (.*)$", block, re.M)
        reasons[name] = reasons.get(name, "") + (reason.group(1) if reason else "")
    return reasons


def rule_scripts(workdir: Path) -> dict[str, Path]:
    """Rule name -> its script, for every rule with a script."""
    found = {}
    for smk in (workdir / "workflow" / "rules").glob("*.smk"):
        # Rules inside `if` blocks are indented.
        for block in re.split(r"(?m)^(?=[ \t]*rule \w+:)", smk.read_text()):
            script = re.search(r'script:\s*\n\s*"\.\./scripts/(\w+\.py)"', block)
            if script:
                name = block.strip()[5:].split(":", 1)[0]
                found[name] = workdir / "workflow" / "scripts" / script[1]
    return found


def _rerun_after_edit(workdir: Path, module: str) -> tuple[dict[str, str], set[str]]:
    """Edit ``module`` (dotted, under microgen); the dry run's reasons, and the rules of the
    DAG whose scripts reach the module by the standard library's ModuleFinder."""
    in_dag = planned_rules(snakemake(workdir, "-n", "--forceall"))
    root = workdir / "workflow"
    users = {
        rule
        for rule, script in rule_scripts(workdir).items()
        if rule in in_dag and module in modules_reached(script, root)
    }
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    text = path.read_text()
    path.write_text(text + "\n# edited\n")
    try:
        result = snakemake(workdir, "-n")
        assert result.returncode == 0, result.stderr[-2000:]
        return planned_reasons(result), users
    finally:
        path.write_text(text)
        # Restore a consistent state for the other tests (mtime now newer than outputs).
        snakemake(workdir, "--touch")


@pytest.mark.parametrize("module", ["microgen.data.preprocess", "microgen.data.split"])
def test_library_edit_reruns_exactly_the_rules_that_reach_it(workdir, module):
    reasons, users = _rerun_after_edit(workdir, module)
    edited = "workflow/" + module.replace(".", "/") + ".py"
    # Snakemake names one reason per job: a rule that reaches the module but also reads the
    # output of one that reruns says "Input files updated by another job".
    cites = {rule for rule, reason in reasons.items() if edited in reason}
    assert cites and cites <= users
    assert users <= set(reasons), f"rules using {module} that do not rerun: {users - set(reasons)}"
    # Everything else that reruns does so only because an input it reads is being remade.
    for rule, reason in reasons.items():
        if rule not in users and rule != "all":
            assert reason.startswith("Input files updated by another job"), (rule, reason)


def test_figure_style_edit_reruns_only_figure_rules(workdir):
    reasons, users = _rerun_after_edit(workdir, "microgen.figures.style")
    assert users and set(reasons) - {"all"} == users
    for rule in users:
        assert rule.startswith("plot_"), f"{rule} is not a figure rule but draws with style.py"


def test_copied_checkout_plans_nothing(workdir, tmp_path):
    copy = tmp_path / "moved"
    subprocess.run(["cp", "-a", str(workdir), str(copy)], check=True)
    result = snakemake(copy, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]


def test_report_builds_after_the_run(workdir):
    result = snakemake(workdir, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (workdir / "report.html").read_text(errors="replace")
    assert len(html) > 100_000 and "fig14-correlation-envelopes.png" in html


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "config").glob("*.yaml")))
def test_report_of_an_unrun_config_builds_or_names_what_is_missing(config, tmp_path):
    root = copy_workflow(tmp_path)
    result = snakemake(root, "--report", "report.html", "--configfile", f"config/{config}")
    out = result.stdout + result.stderr
    if result.returncode == 0:
        assert (root / "report.html").stat().st_size > 10_000
    else:
        said = re.search(r"marked for report but|Missing input files|does not exist", out)
        assert said, out[-3000:]
    assert "Traceback" not in out and "jinja" not in out.lower(), out[-3000:]


def test_misspelt_key_fails_before_any_job(workdir, tmp_path):
    path = _variant(
        workdir, "typo", lambda c: c["split"].update(seen_cuont=c["split"].pop("seen_count"))
    )
    result = snakemake(workdir, "--configfile", str(path), "--directory", str(tmp_path))
    assert result.returncode != 0
    assert "seen_cuont" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_broken_condition_schema_stops_the_dag_naming_file_and_key(workdir):
    schema = yaml.safe_load((workdir / "resources" / "schemas" / "uhcs.yaml").read_text())
    schema["categorical"][0]["categories"] = []
    broken = workdir / "broken-schema.yaml"
    broken.write_text(yaml.safe_dump(schema, allow_unicode=True))
    path = _variant(workdir, "schema", lambda c: c["dataset"].update(schema=str(broken)))
    result = snakemake(workdir, "--configfile", str(path), "-n")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "broken-schema.yaml: categorical.0.categories" in out, out[-2000:]


def test_wrong_type_names_the_key(workdir):
    path = _variant(workdir, "type", lambda c: c["dataset"]["synthetic"].update(n_conditions="x"))
    result = snakemake(workdir, "--configfile", str(path), "-n")
    assert result.returncode != 0
    assert "n_conditions" in result.stdout + result.stderr


def test_lint_is_clean():
    result = subprocess.run(
        ["snakemake", "--lint"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_figure_parameter_reruns_only_the_figure(workdir):
    path = _variant(workdir, "fig", lambda c: c["figures"].update(segmentation_examples=1))
    assert planned_rules(snakemake(workdir, "-n", "--configfile", str(path))) == {
        "plot_segmentation_examples",
        "all",
    }


def test_segmentation_loss_reruns_segmentation_not_generation(workdir):
    def dice(config):
        config["segment"].update(losses=["dice"], apply="vgg16-dice")

    rules = planned_rules(
        snakemake(workdir, "-n", "--configfile", str(_variant(workdir, "d", dice)))
    )
    assert {"train_segmenter", "segment_validation_images", "segment_samples"} <= rules
    assert not rules & {"fine_tune", "sample_model", "train_baseline", "sample_baseline",
                        "pretrain_tiny_base", "synthesize_dataset", "train_vae3d"}  # fmt: skip


def test_a_real_data_set_is_evaluated_without_ground_truth(tmp_path):
    """Only a synthetic data set has a law to draw fresh ground truth from: the real UHCS-24
    folder with generation and evaluation plans Tables 6 / B5 and no ground-truth job (the
    rule that wrote both used to declare the headline tables and end in a
    MissingOutputException on real data)."""
    if not UHCS24.is_dir():
        pytest.skip(f"real UHCS-24 folder not found at {UHCS24}")
    root = copy_workflow(tmp_path)
    config = yaml.safe_load((root / "config" / "uhcs24.yaml").read_text())
    small = yaml.safe_load(SMALL.read_text())
    config.update({k: small[k] for k in ("generate", "evaluate", "figures")})
    config["dataset"]["folder"]["path"] = str(UHCS24)
    del config["segment"]["cross_validation"]  # its own DAG, read at parse time
    config["preprocess"] = {"native_side": 484}
    (root / "real.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    result = snakemake(root, "-n", "--configfile", "real.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    rules = planned_rules(result)
    assert {"evaluate_fidelity", "segment_samples", "generative_metrics"} <= rules
    assert not {r for r in rules if "ground_truth" in r or "microconstituent" in r}
    assert "ground-truth" not in result.stdout  # no job declares a ground-truth file
