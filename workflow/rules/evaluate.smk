# Evaluation: segment every generated set, describe it, and compare it with the real
# validation images (Tables 6, B5, 1/2; Figs 14, trends) and — for the synthetic data set —
# with fresh ground-truth micrographs at the same conditions (the headline table).


rule ground_truth_set:
    input:
        conditions="results/{ds}/conditions/validation.csv",
        code=code("evaluate.ground_truth", "data.synthetic"),
    output:
        metadata="results/{ds}/evaluation/ground-truth/metadata.csv",
        images=directory("results/{ds}/evaluation/ground-truth/images"),
        masks=directory("results/{ds}/evaluation/ground-truth/masks"),
    params:
        n_per_condition=config["evaluate"]["truth_per_condition"],
        shape=lambda wildcards: [config["generate"]["sampling"]["resolution"]] * 2,
        seed=config["evaluate"]["seed"],
    resources:
        **compute("data"),
    log:
        "results/{ds}/logs/ground_truth_set.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/ground_truth_set.py"


rule segment_samples:
    input:
        samples="results/{ds}/samples/{model}/{mode}.csv",
        images="results/{ds}/samples/{model}/{mode}",
        conditions="results/{ds}/conditions/validation.csv",
        metadata="results/{ds}/data/metadata.csv",
        segmenter=f"results/{{ds}}/segmenter/{SEGMENTER}/best/model.safetensors",
        code=code("segment.stage", "evaluate.sample_sets", "segment.infer"),
    output:
        index="results/{ds}/evaluation/sets/{model}__{mode}.csv",
        masks=directory("results/{ds}/masks/gen__{model}__{mode}"),
    params:
        scale=sample_pixel_scale,
    wildcard_constraints:
        mode="full_text|text_only|parameter_only",
    resources:
        **compute("segment"),
    log:
        "results/{ds}/logs/segment_samples-{model}-{mode}.log",
    conda:
        "../../envs/segment.yaml"
    script:
        "../scripts/segment_samples.py"


rule evaluate_fidelity:
    input:
        generated=lambda wildcards: set_tables(wildcards, "index"),
        rows=lambda wildcards: set_tables(wildcards, "rows"),
        curves=lambda wildcards: set_tables(wildcards, "curves"),
        real_rows=f"results/{{ds}}/descriptors/real-{SEGMENTER}.parquet",
        real_curves=f"results/{{ds}}/descriptors/real-{SEGMENTER}-curves.parquet",
        truth=truth_tables,
        metadata="results/{ds}/data/metadata.csv",
        split="results/{ds}/split.csv",
        conditions="results/{ds}/conditions/validation.csv",
        code=code("evaluate.stage", "evaluate.fidelity", "evaluate.ground_truth", "figures.fidelity"),
    output:
        table6=report(
            "results/{ds}/tables/table6-correlation-errors.csv",
            caption="../report/table6-correlation-errors.rst",
            category="Tables",
        ),
        tableB5="results/{ds}/tables/tableB5-descriptors.csv",
        headline=report(
            "results/{ds}/tables/ground-truth-fidelity.csv",
            caption="../report/ground-truth-fidelity.rst",
            category="Tables",
        ),
        per_condition="results/{ds}/tables/ground-truth-fidelity-per-condition.csv",
        fig14=report(
            "results/{ds}/figures/fig14-correlation-envelopes.png",
            caption="../report/fig14-correlation-envelopes.rst",
            category="Evaluation",
        ),
        trends=report(
            "results/{ds}/figures/descriptor-trends-temperature.png",
            caption="../report/descriptor-trends.rst",
            category="Evaluation",
        ),
    params:
        r_range=config["evaluate"]["r_range"],
    resources:
        **compute("analysis"),
    log:
        "results/{ds}/logs/evaluate_fidelity.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/evaluate_fidelity.py"


rule generative_metrics:
    input:
        generated=lambda wildcards: set_tables(wildcards, "index"),
        metadata="results/{ds}/data/metadata.csv",
        split="results/{ds}/split.csv",
        conditions="results/{ds}/conditions/validation.csv",
        segmenter=f"results/{{ds}}/segmenter/{SEGMENTER}/best/model.safetensors",
        code=code("evaluate.generative", "evaluate.fidelity", "metrics"),
    output:
        long="results/{ds}/tables/generative-metrics-long.csv",
        wide=report(
            "results/{ds}/tables/table1-2-generative-metrics.csv",
            caption="../report/table1-2-generative-metrics.rst",
            category="Tables",
        ),
        table_b4=report(
            "results/{ds}/tables/table-b4-sd-variants.csv",
            caption="../report/table-b4-sd-variants.rst",
            category="Tables",
        ),
    params:
        resolution=config["generate"]["sampling"]["resolution"],
        vgg19_weights=config["evaluate"]["vgg19_weights"],
        sd_variants=lambda wildcards: sd_variants(),
    resources:
        **compute("sample"),
    log:
        "results/{ds}/logs/generative_metrics.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/generative_metrics.py"
