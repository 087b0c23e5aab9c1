# Evaluation: segment every generated set, describe it, and compare it with the real
# validation images (Tables 6, B5, 1/2; Figs 10-14, B3-B9) and — for the synthetic data set —
# with fresh ground-truth micrographs at the same conditions (the headline table).


rule ground_truth_set:
    # draw "ground-truth": the reference set; "ground-truth-redraw": an independent redraw
    # of as many images per condition as a generated set holds, scored like a model (the
    # noise floor of the headline table).
    input:
        conditions="results/{ds}/conditions/validation.csv",
        code=code("ground_truth_set"),
    output:
        metadata="results/{ds}/evaluation/{draw}/metadata.csv",
        images=directory("results/{ds}/evaluation/{draw}/images"),
        masks=directory("results/{ds}/evaluation/{draw}/masks"),
    log:
        "results/{ds}/logs/ground_truth_set-{draw}.log",
    wildcard_constraints:
        draw="ground-truth|ground-truth-redraw",
    conda:
        "../../envs/data.yaml"
    resources:
        **compute("data"),
    params:
        truth=ground_truth_params,
    script:
        "../scripts/ground_truth_set.py"


rule segment_ground_truth:
    # The redraw measured through the segmenter, as generated sets are: the floor of a
    # perfect generator whose images pass through this segmenter.
    input:
        metadata="results/{ds}/evaluation/ground-truth-redraw/metadata.csv",
        images="results/{ds}/evaluation/ground-truth-redraw/images",
        model=f"results/{{ds}}/segmenter/{SEGMENTER}/best/model.safetensors",
        code=code("segment_ground_truth"),
    output:
        metadata="results/{ds}/evaluation/ground-truth-segmented/metadata.csv",
        masks=directory("results/{ds}/evaluation/ground-truth-segmented/masks"),
    log:
        "results/{ds}/logs/segment_ground_truth.log",
    conda:
        "../../envs/segment.yaml"
    resources:
        **compute("segment"),
    script:
        "../scripts/segment_ground_truth.py"


rule segment_samples:
    input:
        samples="results/{ds}/samples/{model}/{mode}.csv",
        images="results/{ds}/samples/{model}/{mode}",
        conditions="results/{ds}/conditions/validation.csv",
        metadata="results/{ds}/data/metadata.csv",
        segmenter=f"results/{{ds}}/segmenter/{SEGMENTER}/best/model.safetensors",
        code=code("segment_samples"),
    output:
        index="results/{ds}/evaluation/sets/{model}__{mode}.csv",
        masks=directory("results/{ds}/masks/gen__{model}__{mode}"),
    log:
        "results/{ds}/logs/segment_samples-{model}-{mode}.log",
    wildcard_constraints:
        mode="full_text|text_only|parameter_only",
    conda:
        "../../envs/segment.yaml"
    resources:
        **compute("segment"),
    params:
        scale=sample_pixel_scale,
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
        redraw=redraw_tables,
        segmented=lambda wildcards: redraw_tables(wildcards, "groundtruth-segmented"),
        metadata="results/{ds}/data/metadata.csv",
        split="results/{ds}/split.csv",
        conditions="results/{ds}/conditions/validation.csv",
        code=code("evaluate_fidelity"),
    output:
        table6=report(
            "results/{ds}/tables/table6-correlation-errors.csv",
            caption="../report/table6-correlation-errors.rst",
            category="Tables",
        ),
        tableB5=report(
            "results/{ds}/tables/tableB5-descriptors.csv",
            caption="../report/tableB5-descriptors.rst",
            category="Tables",
        ),
        headline=report(
            "results/{ds}/tables/ground-truth-fidelity.csv",
            caption="../report/ground-truth-fidelity.rst",
            category="Tables",
        ),
        per_condition=report(
            "results/{ds}/tables/ground-truth-fidelity-per-condition.csv",
            caption="../report/ground-truth-fidelity-per-condition.rst",
            category="Tables",
        ),
    log:
        "results/{ds}/logs/evaluate_fidelity.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        **compute("analysis"),
    params:
        r_range=config["evaluate"]["r_range"],
    script:
        "../scripts/evaluate_fidelity.py"


rule plot_correlation_envelopes:
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
        code=code("plot_correlation_envelopes"),
    output:
        png=report(
            "results/{ds}/figures/fig14-correlation-envelopes.png",
            caption="../report/fig14-correlation-envelopes.rst",
            category="Evaluation",
        ),
        pdf="results/{ds}/figures/fig14-correlation-envelopes.pdf",
    log:
        "results/{ds}/logs/plot_correlation_envelopes.log",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("analysis"),
    script:
        "../scripts/plot_correlation_envelopes.py"


rule generative_metrics:
    input:
        generated=lambda wildcards: set_tables(wildcards, "index"),
        metadata="results/{ds}/data/metadata.csv",
        split="results/{ds}/split.csv",
        conditions="results/{ds}/conditions/validation.csv",
        segmenter=f"results/{{ds}}/segmenter/{SEGMENTER}/best/model.safetensors",
        code=code("generative_metrics"),
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
    log:
        "results/{ds}/logs/generative_metrics.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        **compute("sample"),
    params:
        resolution=config["generate"]["sampling"]["resolution"],
        vgg19_weights=config["evaluate"]["vgg19_weights"],
        sd_variants=lambda wildcards: sd_variants(),
    script:
        "../scripts/generative_metrics.py"


rule plot_condition_comparison:
    input:
        unpack(comparison_reference),
        conditions="results/{ds}/conditions/validation.csv",
        index=lambda wildcards: f"results/{wildcards.ds}/evaluation/sets/{primary_set()}.csv",
        particles=lambda wildcards: (
            f"results/{wildcards.ds}/descriptors/gen__{primary_set()}-particles.parquet"
        ),
        code=code("plot_condition_comparison"),
    output:
        png=report(
            "results/{ds}/figures/conditions-{variable}-{split}.png",
            caption="../report/condition-comparison.rst",
            category="Evaluation",
            subcategory="Micrographs and size distributions",
        ),
        pdf="results/{ds}/figures/conditions-{variable}-{split}.pdf",
    log:
        "results/{ds}/logs/plot_condition_comparison-{variable}-{split}.log",
    wildcard_constraints:
        variable="[a-z_]+",
        split="seen|unseen",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    params:
        reference_name=comparison_reference_name,
    script:
        "../scripts/plot_condition_comparison.py"


rule plot_descriptor_trends:
    input:
        unpack(figure_references),
        conditions="results/{ds}/conditions/validation.csv",
        generated=lambda wildcards: set_tables(wildcards, "index"),
        rows=lambda wildcards: set_tables(wildcards, "rows"),
        code=code("plot_descriptor_trends"),
    output:
        png=report(
            "results/{ds}/figures/descriptor-trends-{variable}.png",
            caption="../report/descriptor-trends.rst",
            category="Evaluation",
            subcategory="Descriptor trends",
        ),
        pdf="results/{ds}/figures/descriptor-trends-{variable}.pdf",
    log:
        "results/{ds}/logs/plot_descriptor_trends-{variable}.log",
    wildcard_constraints:
        variable="[a-z_]+",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    script:
        "../scripts/plot_descriptor_trends.py"


rule plot_tsne:
    input:
        unpack(figure_references),
        conditions="results/{ds}/conditions/validation.csv",
        generated=lambda wildcards: set_tables(wildcards, "index"),
        segmenter=f"results/{{ds}}/segmenter/{SEGMENTER}/best/model.safetensors",
        code=code("plot_tsne"),
    output:
        png=report(
            "results/{ds}/figures/figB9-tsne.png",
            caption="../report/figB9-tsne.rst",
            category="Evaluation",
        ),
        pdf="results/{ds}/figures/figB9-tsne.pdf",
    log:
        "results/{ds}/logs/plot_tsne.log",
    conda:
        "../../envs/analysis.yaml"
    # Embeds every validation and generated image with the generative metrics' extractor:
    # the same machine family as rule generative_metrics.
    resources:
        **compute("sample"),
    params:
        resolution=config["generate"]["sampling"]["resolution"],
        vgg19_weights=config["evaluate"]["vgg19_weights"],
        seed=config["evaluate"]["seed"],
    script:
        "../scripts/plot_tsne.py"


rule plot_sample_grid:
    # Figs 5, 6, B1, B2: one row per image set (grid_sets in common.smk), conditions as
    # columns; the reference row is real at seen conditions, fresh ground truth at unseen ones.
    input:
        unpack(grid_reference),
        conditions="results/{ds}/conditions/validation.csv",
        sets=lambda wildcards: grid_set_tables(wildcards, wildcards.grid),
        code=code("plot_sample_grid"),
    output:
        png=report(
            "results/{ds}/figures/{grid}-samples.png",
            caption="../report/sample-grid.rst",
            category="Evaluation",
            subcategory="Qualitative comparisons",
        ),
        pdf="results/{ds}/figures/{grid}-samples.pdf",
    log:
        "results/{ds}/logs/plot_sample_grid-{grid}.log",
    wildcard_constraints:
        grid="fig5|fig6|figB1|figB2",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    params:
        variants=lambda wildcards: sd_variants(),
    script:
        "../scripts/plot_sample_grid.py"


rule plot_segmented_samples:
    input:
        metadata="results/{ds}/data/metadata.csv",
        split="results/{ds}/split.csv",
        images="results/{ds}/data/images",
        real_masks=f"results/{{ds}}/masks/real-{SEGMENTER}",
        conditions="results/{ds}/conditions/validation.csv",
        index=lambda wildcards: f"results/{wildcards.ds}/evaluation/sets/{primary_set()}.csv",
        gen_masks=lambda wildcards: f"results/{wildcards.ds}/masks/gen__{primary_set()}",
        code=code("plot_segmented_samples"),
    output:
        png=report(
            "results/{ds}/figures/fig9-segmented-samples.png",
            caption="../report/fig9-segmented-samples.rst",
            category="Evaluation",
            subcategory="Qualitative comparisons",
        ),
        pdf="results/{ds}/figures/fig9-segmented-samples.pdf",
    log:
        "results/{ds}/logs/plot_segmented_samples.log",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    script:
        "../scripts/plot_segmented_samples.py"


rule probe_parameter_awareness:
    input:
        base=base_model,
        lora="results/{ds}/models/{model}/full_text/pytorch_lora_weights.safetensors",
        segmenter=f"results/{{ds}}/segmenter/{SEGMENTER}/best/model.safetensors",
        metadata="results/{ds}/data/metadata.csv",
        split="results/{ds}/split.csv",
        code=code("probe_parameter_awareness"),
    output:
        table=report(
            "results/{ds}/tables/parameter-awareness-{model}.csv",
            caption="../report/parameter-awareness.rst",
            category="Tables",
        ),
    log:
        "results/{ds}/logs/probe_parameter_awareness-{model}.log",
    wildcard_constraints:
        model=model_names(),
    conda:
        "../../envs/probe.yaml"
    resources:
        **compute("sample"),
    params:
        base=base_model_id,
        probe=lambda wildcards: dict(config["generate"]["probe"]),
        pixel_scale=sample_pixel_scale,
        synthetic_law=SOURCE == "synthetic",
        sampling=lambda wildcards: {
            k: config["generate"]["sampling"][k]
            for k in ("steps", "guidance", "resolution")
        },
    script:
        "../scripts/probe_parameter_awareness.py"


rule microconstituent_table:
    # Share of each set's images that show their requested microconstituent (network, laths).
    input:
        index=lambda wildcards: set_tables(wildcards, "index"),
        masks=lambda wildcards: grouped_sets(wildcards, "masks"),
        redraw="results/{ds}/evaluation/ground-truth-redraw/metadata.csv",
        redraw_masks="results/{ds}/evaluation/ground-truth-redraw/masks",
        segmented="results/{ds}/evaluation/ground-truth-segmented/metadata.csv",
        segmented_masks="results/{ds}/evaluation/ground-truth-segmented/masks",
        code=code("microconstituent_table"),
    output:
        csv=report(
            "results/{ds}/tables/microconstituent-agreement.csv",
            caption="../report/microconstituent-agreement.rst",
            category="Tables",
        ),
        md="results/{ds}/tables/microconstituent-agreement.md",
    log:
        "results/{ds}/logs/microconstituent_table.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        **compute("analysis"),
    params:
        sets=all_sets(),
    script:
        "../scripts/microconstituent_table.py"
