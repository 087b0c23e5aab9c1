# Descriptors of any image set with masks: particles, S2 and lineal path per image.


rule describe_masks:
    input:
        metadata=lambda wildcards: plan.metadata_of(wildcards.ds, wildcards.source),
        masks=lambda wildcards: plan.masks_of(wildcards.ds, wildcards.source),
        code=code("describe_masks"),
    output:
        rows="results/{ds}/descriptors/{source}.parquet",
        curves="results/{ds}/descriptors/{source}-curves.parquet",
        particles="results/{ds}/descriptors/{source}-particles.parquet",
    log:
        "results/{ds}/logs/describe_masks-{source}.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        **compute("analysis"),
    params:
        descriptors=lambda wildcards: config["descriptors"],
    script:
        "../scripts/describe_masks.py"


rule describe_condition_table:
    # A condition table's images through the applied segmenter, described as the
    # evaluation's generated sets are.
    input:
        samples=f"{GENERATED}/samples.csv",
        images=f"{GENERATED}/images",
        segmenter=SEGMENTER_MODEL,
        code=code("describe_condition_table"),
    output:
        masks=directory(f"{GENERATED}/masks"),
        descriptors=report(
            f"{GENERATED}/descriptors.csv",
            caption="../report/condition-table-descriptors.rst",
            category="Condition tables",
            subcategory="{table}",
        ),
    log:
        "results/{ds}/logs/describe_condition_table-{model}-{mode}-{table}.log",
    wildcard_constraints:
        mode="full_text|text_only|parameter_only",
        table=plan.table_names(plan.condition_tables(config)),
    conda:
        "../../envs/segment.yaml"
    resources:
        **compute("segment"),
    params:
        descriptors=lambda wildcards: config["descriptors"],
    script:
        "../scripts/describe_condition_table.py"


rule per_group_area_fraction:
    # Data sets split by group (split.by, e.g. Aachen-Heerlen steel types): Table 7b.
    input:
        metadata=METADATA,
        masks=MASKS,
        split=SPLIT,
        generated=lambda wildcards: plan.grouped_sets(config, wildcards.ds, "index"),
        generated_masks=lambda wildcards: plan.grouped_sets(
            config, wildcards.ds, "masks"
        ),
        code=code("per_group_area_fraction"),
    output:
        table=report(
            "results/{ds}/tables/per-group-area-fraction.csv",
            caption="../report/per-group-area-fraction.rst",
            category="Tables",
        ),
        markdown="results/{ds}/tables/per-group-area-fraction.md",
    log:
        "results/{ds}/logs/per_group_area_fraction.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        **compute("analysis"),
    params:
        group=config["split"].get("by", "condition"),
        phase=config["descriptors"]["phase"],
    script:
        "../scripts/per_group_area_fraction.py"
