# 3D branch (MicroGen3D): simulated or published two/three-phase volumes, their GraSPI
# features and a split grouped by simulation run.


VOLUME_SOURCE = config["volumes"]["source"]


if VOLUME_SOURCE == "hdf5":

    rule import_volumes:
        input:
            code=code("import_volumes"),
        output:
            h5=VOLUMES,
            features="results/{vds}/volumes/features.parquet",
        log:
            "results/{vds}/logs/import_volumes.log",
        conda:
            "../../envs/data.yaml"
        resources:
            **compute("data"),
        params:
            source=lambda wildcards: config["volumes"]["hdf5"]["path"],
            filename=lambda wildcards: config["volumes"]["hdf5"].get("filename"),
        script:
            "../scripts/import_volumes.py"


if VOLUME_SOURCE == "simulate":

    rule simulate_volumes:
        input:
            code=code("simulate_volumes"),
        output:
            h5=VOLUMES,
            features="results/{vds}/volumes/features.parquet",
        log:
            "results/{vds}/logs/simulate_volumes.log",
        benchmark:
            "results/{vds}/benchmarks/simulate_volumes.tsv"
        conda:
            "../../envs/analysis.yaml"
        resources:
            **compute("simulate"),
        params:
            simulation=lambda wildcards: dict(config["volumes"]["simulate"]),
        script:
            "../scripts/simulate_volumes.py"


rule split_volumes:
    input:
        h5=VOLUMES,
        code=code("split_volumes"),
    output:
        split=VOLUME_SPLIT,
    log:
        "results/{vds}/logs/split_volumes.log",
    # The 3D chain (split, VAE, feature predictor, LDM, evaluation: ~410 s on 2 cores) runs
    # beside the 2D one from the start: at equal priorities one embedded run started it at
    # 813 s, when simulate_volumes had ended at 107 s, and ended on evaluate_ldm3d alone.
    priority: 5
    conda:
        "../../envs/analysis.yaml"
    resources:
        **compute("data"),
    params:
        val_fraction=config["volumes"]["split"]["val_fraction"],
        seed=config["volumes"]["split"]["seed"],
        group_by=config["volumes"]["split"].get("group_by", "run_id"),
        stratify_by=config["volumes"]["split"].get("stratify_by"),
    script:
        "../scripts/split_volumes.py"


rule train_vae3d:
    input:
        h5=VOLUMES,
        split=VOLUME_SPLIT,
        code=code("train_vae3d"),
    output:
        model=VAE,
        history="results/{vds}/models/vae/train_log.csv",
    log:
        "results/{vds}/logs/train_vae3d.log",
    benchmark:
        "results/{vds}/benchmarks/train_vae3d.tsv"
    priority: 5  # the 3D chain: see split_volumes
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("train"),
    params:
        train=lambda wildcards: dict(config["volumes"]["vae"]),
    script:
        "../scripts/train_vae3d.py"


rule train_feature_predictor:
    input:
        h5=VOLUMES,
        split=VOLUME_SPLIT,
        vae=VAE,
        code=code("train_feature_predictor"),
    output:
        model="results/{vds}/models/feature-predictor/model.safetensors",
        history="results/{vds}/models/feature-predictor/train_log.csv",
    log:
        "results/{vds}/logs/train_feature_predictor.log",
    benchmark:
        "results/{vds}/benchmarks/train_feature_predictor.tsv"
    priority: 5  # the 3D chain: see split_volumes
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("train"),
    params:
        train=lambda wildcards: dict(config["volumes"]["feature_predictor"]),
    script:
        "../scripts/train_feature_predictor.py"


rule train_ldm3d:
    input:
        h5=VOLUMES,
        split=VOLUME_SPLIT,
        vae=VAE,
        code=code("train_ldm3d"),
    output:
        history="results/{vds}/models/ldm/train_log.csv",
    log:
        "results/{vds}/logs/train_ldm3d.log",
    benchmark:
        "results/{vds}/benchmarks/train_ldm3d.tsv"
    priority: 5  # the 3D chain: see split_volumes
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("train"),
    params:
        train=lambda wildcards: dict(config["volumes"]["ldm"]),
        conditions=config["volumes"]["conditions"],
    script:
        "../scripts/train_ldm3d.py"


rule evaluate_ldm3d:
    input:
        h5=VOLUMES,
        split=VOLUME_SPLIT,
        vae=VAE,
        fp="results/{vds}/models/feature-predictor/model.safetensors",
        ldm="results/{vds}/models/ldm/train_log.csv",
        code=code("evaluate_ldm3d"),
    output:
        r2=report(
            "results/{vds}/tables/r2-samplers.csv",
            caption="../report/r2-samplers.rst",
            category="3D",
        ),
        process=report(
            "results/{vds}/tables/process-parameters-r2.csv",
            caption="../report/process-parameters-r2.rst",
            category="3D",
        ),
        timing="results/{vds}/tables/time-vs-batch.csv",
        measured="results/{vds}/evaluation/target-vs-measured.csv",
        diversity="results/{vds}/evaluation/diversity.csv",
    log:
        "results/{vds}/logs/evaluate_ldm3d.log",
    benchmark:
        "results/{vds}/benchmarks/evaluate_ldm3d.tsv"
    priority: 5  # the 3D chain: see split_volumes
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("sample"),
    params:
        evaluation=lambda wildcards: dict(config["volumes"]["evaluate"]),
        conditions=config["volumes"]["conditions"],
    script:
        "../scripts/evaluate_ldm3d.py"


rule sample_target_table:
    # A user's feature targets: volumes, their measured features beside the targets and
    # the feature predictor's process parameters.
    input:
        h5=VOLUMES,
        split=VOLUME_SPLIT,
        vae=VAE,
        fp="results/{vds}/models/feature-predictor/model.safetensors",
        ldm="results/{vds}/models/ldm/train_log.csv",
        table=lambda wildcards: plan.target_tables(config)[wildcards.table],
        code=code("sample_target_table"),
    output:
        h5=f"{TARGETS}/volumes.h5",
        features=report(
            f"{TARGETS}/features.csv",
            caption="../report/target-table-features.rst",
            category="3D",
        ),
    log:
        "results/{vds}/logs/sample_target_table-{table}.log",
    wildcard_constraints:
        table=plan.table_names(plan.target_tables(config)),
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("sample"),
    params:
        sampling=lambda wildcards: plan.target_sampling_params(config),
        conditions=config["volumes"]["conditions"],
    script:
        "../scripts/sample_target_table.py"


rule plot_ldm3d:
    input:
        r2="results/{vds}/tables/r2-samplers.csv",
        measured="results/{vds}/evaluation/target-vs-measured.csv",
        diversity="results/{vds}/evaluation/diversity.csv",
        timing="results/{vds}/tables/time-vs-batch.csv",
        code=code("plot_ldm3d"),
    output:
        scatter=report(
            "results/{vds}/figures/target-vs-measured.png",
            caption="../report/target-vs-measured.rst",
            category="3D",
        ),
        scatter_pdf="results/{vds}/figures/target-vs-measured.pdf",
        diversity=report(
            "results/{vds}/figures/diversity-kde.png",
            caption="../report/diversity-kde.rst",
            category="3D",
        ),
        diversity_pdf="results/{vds}/figures/diversity-kde.pdf",
        timing=report(
            "results/{vds}/figures/time-vs-batch.png",
            caption="../report/time-vs-batch.rst",
            category="3D",
        ),
        timing_pdf="results/{vds}/figures/time-vs-batch.pdf",
    log:
        "results/{vds}/logs/plot_ldm3d.log",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("analysis"),
    params:
        conditions=config["volumes"]["conditions"],
    script:
        "../scripts/plot_ldm3d.py"
