# Descriptors of any image set with masks: particles, S2 and lineal path per image.


rule describe_masks:
    input:
        metadata=metadata_of,
        masks=masks_of,
        code=code(
            "descriptors.tables",
            "descriptors.particles",
            "descriptors.correlations",
            "descriptors._validate",
        ),
    output:
        rows="results/{ds}/descriptors/{source}.parquet",
        curves="results/{ds}/descriptors/{source}-curves.parquet",
        particles="results/{ds}/descriptors/{source}-particles.parquet",
    params:
        descriptors=descriptor_params,
    resources:
        **compute("analysis"),
    log:
        "results/{ds}/logs/describe_masks-{source}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/describe_masks.py"
