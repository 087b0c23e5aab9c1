# Evaluation: segment every generated set, describe it, and compare it with the real
# validation images (Tables 6, B5, 1/2; Figs 10-14, B3-B9) and — for the synthetic data set —
# with fresh ground-truth micrographs at the same conditions (the headline table).


rule ground_truth_set:
    # draw "ground-truth": the reference set; "ground-truth-redraw": an independent redraw
    # of as many images per condition as a generated set holds, scored like a model (the
    # noise floor of the headline table).
    input:
        conditions=CONDITIONS,
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
        truth=lambda wildcards: plan.ground_truth_params(config, wildcards.draw),
    script:
        "../scripts/ground_truth_set.py"


rule segment_ground_truth:
    # The redraw measured through the segmenter, as generated sets are: the floor of a
    # perfect generator whose images pass through this segmenter.
    input:
        metadata="results/{ds}/evaluation/ground-truth-redraw/metadata.csv",
        images="results/{ds}/evaluation/ground-truth-redraw/images",
        model=SEGMENTER_MODEL,
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
        conditions=CONDITIONS,
        metadata=METADATA,
        segmenter=SEGMENTER_MODEL,
        code=code("segment_samples"),
    output:
        index="results/{ds}/evaluation/sets/{model}__{mode}.csv",
        masks=directory("results/{ds}/masks/sets/{model}__{mode}"),
    log:
        "results/{ds}/logs/segment_samples-{model}-{mode}.log",
    wildcard_constraints:
        mode="full_text|text_only|parameter_only",
    conda:
        "../../envs/segment.yaml"
    resources:
        **compute("segment"),
    params:
        scale=lambda wildcards: plan.sample_pixel_scale(config),
    script:
        "../scripts/segment_samples.py"


rule evaluate_fidelity:
    input:
        generated=set_tables("index"),
        rows=set_tables("rows"),
        curves=set_tables("curves"),
        real_rows=f"results/{{ds}}/descriptors/real-{SEGMENTER}.parquet",
        real_curves=f"results/{{ds}}/descriptors/real-{SEGMENTER}-curves.parquet",
        metadata=METADATA,
        split=SPLIT,
        conditions=CONDITIONS,
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


if SOURCE == "synthetic":
    # Only a synthetic data set has a law to draw fresh ground truth from.

    rule ground_truth_fidelity:
        input:
            generated=set_tables("index"),
            rows=set_tables("rows"),
            curves=set_tables("curves"),
            truth=lambda wildcards: plan.truth_tables(config, wildcards.ds),
            redraw=lambda wildcards: plan.redraw_tables(config, wildcards.ds),
            segmented=lambda wildcards: plan.redraw_tables(
                config, wildcards.ds, "ground-truth-segmented"
            ),
            code=code("ground_truth_fidelity"),
        output:
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
            "results/{ds}/logs/ground_truth_fidelity.log",
        conda:
            "../../envs/analysis.yaml"
        resources:
            **compute("analysis"),
        params:
            r_range=config["evaluate"]["r_range"],
        script:
            "../scripts/ground_truth_fidelity.py"


rule plot_correlation_envelopes:
    input:
        generated=set_tables("index"),
        rows=set_tables("rows"),
        curves=set_tables("curves"),
        real_rows=f"results/{{ds}}/descriptors/real-{SEGMENTER}.parquet",
        real_curves=f"results/{{ds}}/descriptors/real-{SEGMENTER}-curves.parquet",
        truth=lambda wildcards: plan.truth_tables(config, wildcards.ds),
        metadata=METADATA,
        split=SPLIT,
        conditions=CONDITIONS,
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


rule embed_evaluation_images:
    # Every real, ground-truth and generated image at the validation conditions, embedded
    # once for the generative metrics and Fig. B9 (each embedded the same images before).
    input:
        unpack(lambda wildcards: plan.figure_references(config, wildcards.ds)),
        conditions=CONDITIONS,
        generated=set_tables("index"),
        segmenter=SEGMENTER_MODEL,
        code=code("embed_evaluation_images"),
    output:
        EVALUATION_FEATURES,
    log:
        "results/{ds}/logs/embed_evaluation_images.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        **compute("sample"),
    params:
        resolution=config["generate"]["sampling"]["resolution"],
        vgg19_weights=config["evaluate"]["vgg19_weights"],
    script:
        "../scripts/embed_evaluation_images.py"


rule generative_metrics:
    input:
        generated=set_tables("index"),
        metadata=METADATA,
        split=SPLIT,
        conditions=CONDITIONS,
        features=EVALUATION_FEATURES,
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
        sd_variants=lambda wildcards: plan.sd_variants(config),
    script:
        "../scripts/generative_metrics.py"


rule plot_condition_comparison:
    input:
        unpack(
            lambda wildcards: plan.comparison_reference(
                config, wildcards.ds, wildcards.split
            )
        ),
        conditions=CONDITIONS,
        index=primary_set_file("results/{ds}/evaluation/sets/{set}.csv"),
        particles=primary_set_file(
            "results/{ds}/descriptors/sets/{set}-particles.parquet"
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
        reference_name=lambda wildcards: plan.comparison_reference_name(
            config, wildcards.split
        ),
    script:
        "../scripts/plot_condition_comparison.py"


rule plot_descriptor_trends:
    input:
        unpack(lambda wildcards: plan.figure_references(config, wildcards.ds)),
        conditions=CONDITIONS,
        generated=set_tables("index"),
        rows=set_tables("rows"),
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
        unpack(lambda wildcards: plan.figure_references(config, wildcards.ds)),
        conditions=CONDITIONS,
        generated=set_tables("index"),
        features=EVALUATION_FEATURES,
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
    resources:
        **compute("analysis"),
    params:
        resolution=config["generate"]["sampling"]["resolution"],
        seed=config["evaluate"]["seed"],
    script:
        "../scripts/plot_tsne.py"


rule plot_sample_grid:
    # Figs 5, 6, B1, B2, 15: one row per image set (microgen.plan.grid_sets), conditions as
    # columns; the reference row is real at seen conditions, fresh ground truth at unseen ones
    # (real where no synthetic law draws it: Fig. 15 of a data set split by group).
    input:
        unpack(lambda wildcards: plan.grid_reference(config, wildcards.ds)),
        conditions=CONDITIONS,
        sets=lambda wildcards: plan.grid_set_tables(
            config, wildcards.ds, wildcards.grid
        ),
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
        grid="fig5|fig6|figB1|figB2|fig15",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    params:
        variants=lambda wildcards: plan.sd_variants(config),
        columns=lambda wildcards: plan.grid_columns(config, wildcards.grid),
    script:
        "../scripts/plot_sample_grid.py"


rule plot_segmented_samples:
    input:
        metadata=METADATA,
        split=SPLIT,
        images=IMAGES,
        real_masks=f"results/{{ds}}/masks/real-{SEGMENTER}",
        conditions=CONDITIONS,
        index=primary_set_file("results/{ds}/evaluation/sets/{set}.csv"),
        gen_masks=primary_set_file("results/{ds}/masks/sets/{set}"),
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
    params:
        class_names=CLASS_NAMES,
        class_colors=CLASS_COLORS,
    script:
        "../scripts/plot_segmented_samples.py"


rule probe_parameter_awareness:
    input:
        base=base_model,
        lora="results/{ds}/models/{model}/full_text/pytorch_lora_weights.safetensors",
        segmenter=SEGMENTER_MODEL,
        metadata=METADATA,
        split=SPLIT,
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
        model=plan.model_names(config),
    conda:
        "../../envs/probe.yaml"
    resources:
        **compute("sample"),
    params:
        base=base_model_id,
        probe=lambda wildcards: dict(config["generate"]["probe"]),
        phase=config["descriptors"]["phase"],
        pixel_scale=lambda wildcards: plan.sample_pixel_scale(config),
        synthetic_law=SOURCE == "synthetic",
        sampling=lambda wildcards: {
            k: config["generate"]["sampling"][k]
            for k in ("steps", "guidance", "resolution")
        },
    script:
        "../scripts/probe_parameter_awareness.py"


rule condition_use:
    # Paired denoising loss of a model and its base with each condition removed or changed.
    input:
        base=base_model,
        loras=lambda wildcards: [
            f"results/{wildcards.ds}/models/{wildcards.model}/{mode}/pytorch_lora_weights.safetensors"
            for mode in config["generate"]["models"][wildcards.model]["prompt_modes"]
        ],
        metadata=METADATA,
        split=SPLIT,
        code=code("condition_use"),
    output:
        csv=report(
            "results/{ds}/tables/condition-use-{model}.csv",
            caption="../report/condition-use.rst",
            category="Tables",
        ),
        md="results/{ds}/tables/condition-use-{model}.md",
    log:
        "results/{ds}/logs/condition_use-{model}.log",
    wildcard_constraints:
        model=plan.model_names(config),
    conda:
        "../../envs/probe.yaml"
    resources:
        **compute("sample"),
    params:
        base=base_model_id,
        settings=lambda wildcards: dict(config["evaluate"].get("condition_use") or {}),
    script:
        "../scripts/condition_use.py"


rule microconstituent_table:
    # Share of each set's images that show their requested microconstituent (network, laths).
    input:
        index=set_tables("index"),
        masks=lambda wildcards: plan.grouped_sets(config, wildcards.ds, "masks"),
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
        sets=plan.all_sets(config),
    script:
        "../scripts/microconstituent_table.py"


rule transfer_tables:
    # The schema-transfer experiment (split by group, Aachen-Heerlen): Table 7a (generative
    # metrics and the segmenter's MA IoU beside the paper's) and Table 7b (MAE of the MA
    # area fraction per group beside the paper's).
    input:
        long="results/{ds}/tables/generative-metrics-long.csv",
        per_group="results/{ds}/tables/per-group-area-fraction.csv",
        iou=f"results/{{ds}}/tables/per-group-segmenter-iou-{SEGMENTER}.csv",
        schema=SCHEMA,
        code=code("transfer_tables"),
    output:
        table7a=report(
            "results/{ds}/tables/table7a-ah.csv",
            caption="../report/table7a-ah.rst",
            category="Tables",
        ),
        table7b=report(
            "results/{ds}/tables/table7b-ah.csv",
            caption="../report/table7b-ah.rst",
            category="Tables",
        ),
        md7a="results/{ds}/tables/table7a-ah.md",
        md7b="results/{ds}/tables/table7b-ah.md",
    log:
        "results/{ds}/logs/transfer_tables.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        **compute("analysis"),
    params:
        group=config["split"].get("by", "condition"),
    script:
        "../scripts/transfer_tables.py"


rule plot_figure_d1:
    # Fig. D1: (a) MA area fraction per group, real vs the primary generated set; (b) t-SNE
    # of their image features (the extractor of the generative metrics, as Fig. B9).
    input:
        per_group="results/{ds}/tables/per-group-area-fraction.csv",
        metadata=METADATA,
        split=SPLIT,
        images=IMAGES,
        schema=SCHEMA,
        conditions=CONDITIONS,
        generated=primary_set_file("results/{ds}/evaluation/sets/{set}.csv"),
        segmenter=SEGMENTER_MODEL,
        code=code("plot_figure_d1"),
    output:
        png=report(
            "results/{ds}/figures/figD1-ah.png",
            caption="../report/figD1-ah.rst",
            category="Evaluation",
        ),
        pdf="results/{ds}/figures/figD1-ah.pdf",
    log:
        "results/{ds}/logs/plot_figure_d1.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        **compute("sample"),
    params:
        group=config["split"].get("by", "condition"),
        resolution=config["generate"]["sampling"]["resolution"],
        vgg19_weights=config["evaluate"]["vgg19_weights"],
        seed=config["evaluate"]["seed"],
    script:
        "../scripts/plot_figure_d1.py"
