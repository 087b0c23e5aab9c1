# Data: one prepared data set per config (synthetic, UHCSDB or a local labelled folder),
# then the paper's split. Each source writes the same contract: results/{ds}/data/.

if SOURCE == "synthetic":

    rule synthesize_dataset:
        input:
            schema=schema_file(),
            code=code("synthesize_dataset"),
        output:
            metadata="results/{ds}/data/metadata.csv",
            images=directory("results/{ds}/data/images"),
            masks=directory("results/{ds}/data/masks"),
        log:
            "results/{ds}/logs/synthesize_dataset.log",
        benchmark:
            "results/{ds}/benchmarks/synthesize_dataset.tsv"
        conda:
            "../../envs/data.yaml"
        resources:
            **compute("data"),
        params:
            synthetic=synthetic_params,
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
            sqlite=uhcsdb_sqlite,
            archive=uhcsdb_archive,
            schema=schema_file(),
            code=code("prepare_uhcsdb"),
        output:
            metadata="results/{ds}/data/metadata.csv",
            images=directory("results/{ds}/data/images"),
        log:
            "results/{ds}/logs/prepare_uhcsdb.log",
        conda:
            "../../envs/data.yaml"
        resources:
            **compute("data"),
        params:
            info_band_px=config["dataset"]["uhcsdb"]["info_band_px"],
            images=image_options(),
        script:
            "../scripts/prepare_uhcsdb.py"


if SOURCE == "folder":

    rule prepare_folder:
        input:
            folder=config["dataset"]["folder"]["path"],
            schema=schema_file(),
            code=code("prepare_folder"),
        output:
            metadata="results/{ds}/data/metadata.csv",
            images=directory("results/{ds}/data/images"),
            masks=directory("results/{ds}/data/masks"),
        log:
            "results/{ds}/logs/prepare_folder.log",
        conda:
            "../../envs/data.yaml"
        resources:
            **compute("data"),
        params:
            label_version=config["dataset"]["folder"]["label_version"],
            images=image_options(),
        script:
            "../scripts/prepare_folder.py"


if SOURCE == "aachen_heerlen":

    rule prepare_aachen_heerlen:
        input:
            folder=config["dataset"]["aachen_heerlen"]["path"],
            schema=schema_file(),
            code=code("prepare_aachen_heerlen"),
        output:
            metadata="results/{ds}/data/metadata.csv",
            images=directory("results/{ds}/data/images"),
            masks=directory("results/{ds}/data/masks"),
        log:
            "results/{ds}/logs/prepare_aachen_heerlen.log",
        conda:
            "../../envs/data.yaml"
        resources:
            **compute("data"),
        params:
            options=lambda wildcards: {
                k: v
                for k, v in config["dataset"]["aachen_heerlen"].items()
                if k not in ("path", "manifest")
            },
            images=image_options(),
        script:
            "../scripts/prepare_aachen_heerlen.py"


rule split_dataset:
    input:
        metadata="results/{ds}/data/metadata.csv",
        schema=schema_file(),
        code=code("split_dataset"),
    output:
        split="results/{ds}/split.csv",
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
        split=split_params,
    script:
        "../scripts/split_dataset.py"
