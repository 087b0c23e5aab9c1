# Data: one prepared data set per config (synthetic, UHCSDB, or a folder read by a registered
# reader), then the paper's split. Each source writes the same contract: results/{ds}/data/.

if SOURCE == "synthetic":

    rule synthesize_dataset:
        input:
            schema=SCHEMA,
            code=code("synthesize_dataset"),
        output:
            metadata=METADATA,
            images=directory(IMAGES),
            masks=directory(MASKS),
        log:
            "results/{ds}/logs/synthesize_dataset.log",
        benchmark:
            "results/{ds}/benchmarks/synthesize_dataset.tsv"
        conda:
            "../../envs/data.yaml"
        resources:
            **compute("data"),
        params:
            synthetic=lambda wildcards: config["dataset"]["synthetic"],
        script:
            "../scripts/synthesize_dataset.py"


if SOURCE == "uhcsdb":

    rule download_uhcsdb:
        input:
            manifest=config["dataset"]["uhcsdb"]["manifest"],
            code=code("download_uhcsdb"),
        output:
            "results/{ds}/raw/{file}",
        log:
            "results/{ds}/logs/download_uhcsdb-{file}.log",
        wildcard_constraints:
            file="microstructures.sqlite|micrographs.zip",
        conda:
            "../../envs/data.yaml"
        resources:
            **compute("data"),
        params:
            mirror_url=config["dataset"]["uhcsdb"]["mirror_url"],
            allow_unverified=config["dataset"]["uhcsdb"]["allow_unverified_downloads"],
        script:
            "../scripts/download_uhcsdb.py"

    rule prepare_uhcsdb:
        input:
            sqlite=lambda wildcards: (
                config["dataset"]["uhcsdb"]["sqlite"]
                or f"results/{wildcards.ds}/raw/microstructures.sqlite"
            ),
            archive=lambda wildcards: (
                config["dataset"]["uhcsdb"]["images"]
                or f"results/{wildcards.ds}/raw/micrographs.zip"
            ),
            schema=SCHEMA,
            code=code("prepare_uhcsdb"),
        output:
            metadata=METADATA,
            images=directory(IMAGES),
        log:
            "results/{ds}/logs/prepare_uhcsdb.log",
        conda:
            "../../envs/data.yaml"
        resources:
            **compute("data"),
        params:
            info_band_px=config["dataset"]["uhcsdb"]["info_band_px"],
            missing_images=config["dataset"]["uhcsdb"]["missing_images"],
            images=plan.image_options(config),
        script:
            "../scripts/prepare_uhcsdb.py"


if SOURCE in READERS:
    # A folder read by the reader registered for the source (microgen.data.readers).

    rule prepare_dataset:
        input:
            folder=config["dataset"][SOURCE]["path"],
            schema=SCHEMA,
            code=code("prepare_dataset"),
        output:
            metadata=METADATA,
            images=directory(IMAGES),
            masks=directory(MASKS),
        log:
            "results/{ds}/logs/prepare_dataset.log",
        conda:
            "../../envs/data.yaml"
        resources:
            **compute("data"),
        params:
            source=SOURCE,
            options=lambda wildcards: plan.reader_options(config),
            images=plan.image_options(config),
        script:
            "../scripts/prepare_dataset.py"


rule split_dataset:
    input:
        metadata=METADATA,
        schema=SCHEMA,
        code=code("split_dataset"),
    output:
        split=SPLIT,
        summary_csv=report(
            "results/{ds}/tables/split-summary.csv",
            caption="../report/split-summary.rst",
            category="Tables",
        ),
        summary_md="results/{ds}/tables/split-summary.md",
    log:
        "results/{ds}/logs/split_dataset.log",
    conda:
        "../../envs/data.yaml"
    resources:
        **compute("data"),
    params:
        split=lambda wildcards: config["split"],
    script:
        "../scripts/split_dataset.py"
