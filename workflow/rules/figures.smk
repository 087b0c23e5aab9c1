# Figures of the data stage, registered in the Snakemake report with their captions.


rule plot_dataset_histograms:
    input:
        metadata=METADATA,
        split=SPLIT,
        schema=SCHEMA,
        code=code("plot_dataset_histograms"),
    output:
        png=report(
            "results/{ds}/figures/fig-a1-dataset.png",
            caption="../report/fig-a1-dataset.rst",
            category="Data",
        ),
        pdf="results/{ds}/figures/fig-a1-dataset.pdf",
    log:
        "results/{ds}/logs/plot_dataset_histograms.log",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    script:
        "../scripts/plot_dataset_histograms.py"


rule plot_real_vs_synthetic:
    input:
        metadata=METADATA,
        real=reference_dir() or [],
        code=code("plot_real_vs_synthetic"),
    output:
        png=report(
            "results/{ds}/figures/real-vs-synthetic.png",
            caption="../report/real-vs-synthetic.rst",
            category="Data",
        ),
        pdf="results/{ds}/figures/real-vs-synthetic.pdf",
    log:
        "results/{ds}/logs/plot_real_vs_synthetic.log",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    params:
        per_row=config["figures"]["real_vs_synthetic_per_row"],
    script:
        "../scripts/plot_real_vs_synthetic.py"
