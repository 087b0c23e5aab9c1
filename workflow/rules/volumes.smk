# 3D branch (MicroGen3D): simulated or published two/three-phase volumes, their GraSPI
# features and a split grouped by simulation run.


rule simulate_volumes:
    input:
        code=code(
            "volumes.simulate",
            "volumes.cahn_hilliard",
            "volumes.phases",
            "volumes.hdf5",
            "descriptors.volumes",
        ),
    output:
        h5="results/{vds}/volumes/volumes.h5",
        features="results/{vds}/volumes/features.parquet",
    params:
        simulation=lambda wildcards: dict(config["volumes"]["simulate"]),
    resources:
        **compute("simulate"),
    log:
        "results/{vds}/logs/simulate_volumes.log",
    benchmark:
        "results/{vds}/benchmarks/simulate_volumes.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/simulate_volumes.py"


rule split_volumes:
    input:
        h5="results/{vds}/volumes/volumes.h5",
        code=code("volumes.splits", "volumes.hdf5"),
    output:
        split="results/{vds}/volumes/split.csv",
    params:
        val_fraction=config["volumes"]["split"]["val_fraction"],
        seed=config["volumes"]["split"]["seed"],
    resources:
        **compute("data"),
    log:
        "results/{vds}/logs/split_volumes.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/split_volumes.py"
