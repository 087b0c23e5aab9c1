# Segmentation: U-Net (VGG encoder + ECA) per encoder × loss in config, scored on the
# labelled validation images; the configured model segments image sets for descriptors.


if plan.pretrained_segmenter(config):

    rule import_segmenter:
        # A segmenter trained by another config (segment.pretrained), applied here: the
        # paper's is trained on UHCS-24 and segments UHCSDB images and generated sets.
        input:
            model=f"{plan.pretrained_segmenter(config)}/model.safetensors",
            code=code("import_segmenter"),
        output:
            model=SEGMENTER_MODEL,
        log:
            f"results/{{ds}}/logs/import_segmenter-{SEGMENTER}.log",
        conda:
            "../../envs/segment.yaml"
        resources:
            **compute("analysis"),
        params:
            classes=CLASS_NAMES,
        script:
            "../scripts/import_segmenter.py"

else:

    rule train_segmenter:
        input:
            metadata=METADATA,
            split=SPLIT,
            code=code("train_segmenter"),
        output:
            model="results/{ds}/segmenter/{encoder}-{loss}/best/model.safetensors",
            history="results/{ds}/segmenter/{encoder}-{loss}/train_log.csv",
        log:
            "results/{ds}/logs/train_segmenter-{encoder}-{loss}.log",
        benchmark:
            "results/{ds}/benchmarks/train_segmenter-{encoder}-{loss}.tsv"
        # Every evaluation waits on it (350 s on 2 cores): at equal priorities one embedded
        # run started it at 218 s, behind a baseline.
        priority: 5
        conda:
            "../../envs/segment.yaml"
        resources:
            **compute("segment"),
        params:
            train=lambda wildcards: plan.segmenter_params(
                config, wildcards.encoder, wildcards.loss
            ),
            classes=len(CLASS_NAMES),
        script:
            "../scripts/train_segmenter.py"


rule segment_validation_images:
    input:
        model="results/{ds}/segmenter/{model}/best/model.safetensors",
        metadata=METADATA,
        split=SPLIT,
        code=code("segment_validation_images"),
    output:
        masks=directory("results/{ds}/masks/real-{model}"),
    log:
        "results/{ds}/logs/segment_validation_images-{model}.log",
    conda:
        "../../envs/segment.yaml"
    resources:
        **compute("segment"),
    script:
        "../scripts/segment_validation_images.py"


rule score_segmenter:
    input:
        masks=rules.segment_validation_images.output.masks,
        metadata=METADATA,
        code=code("score_segmenter"),
    output:
        scores="results/{ds}/segmenter/{model}/scores.csv",
    log:
        "results/{ds}/logs/score_segmenter-{model}.log",
    conda:
        "../../envs/segment.yaml"
    resources:
        **compute("analysis"),
    params:
        classes=len(CLASS_NAMES),
    script:
        "../scripts/score_segmenter.py"


rule segmentation_tables:
    input:
        scores=expand(
            rules.score_segmenter.output.scores,
            model=plan.segmenter_models(config),
            allow_missing=True,
        ),
        code=code("segmentation_tables"),
    output:
        losses=report(
            "results/{ds}/tables/table4-losses.csv",
            caption="../report/table4-losses.rst",
            category="Tables",
        ),
        per_class=report(
            "results/{ds}/tables/table5-per-class.csv",
            caption="../report/table5-per-class.rst",
            category="Tables",
        ),
        encoders=report(
            "results/{ds}/tables/tableC1-encoders.csv",
            caption="../report/tableC1-encoders.rst",
            category="Tables",
        ),
    log:
        "results/{ds}/logs/segmentation_tables.log",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    params:
        class_names=CLASS_NAMES,
    script:
        "../scripts/segmentation_tables.py"


rule plot_encoder_comparison:
    # Fig. C1: each encoder's training loss (applied loss) and Table C1's metrics.
    input:
        histories=expand(
            "results/{{ds}}/segmenter/{model}/train_log.csv",
            model=plan.encoder_comparison(config).values(),
        ),
        table=rules.segmentation_tables.output.encoders,
        code=code("plot_encoder_comparison"),
    output:
        png=report(
            "results/{ds}/figures/figC1-encoders.png",
            caption="../report/figC1-encoders.rst",
            category="Segmentation",
        ),
        pdf="results/{ds}/figures/figC1-encoders.pdf",
    log:
        "results/{ds}/logs/plot_encoder_comparison.log",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    params:
        encoders=list(plan.encoder_comparison(config)),
        loss=plan.applied_segmenter(config).split("-", 1)[-1],
    script:
        "../scripts/plot_encoder_comparison.py"


rule plot_segmentation_examples:
    input:
        masks=rules.segment_validation_images.output.masks,
        metadata=METADATA,
        code=code("plot_segmentation_examples"),
    output:
        fig7=report(
            "results/{ds}/figures/fig7-segmentation-{model}.png",
            caption="../report/fig7-segmentation.rst",
            category="Segmentation",
        ),
        fig7_pdf="results/{ds}/figures/fig7-segmentation-{model}.pdf",
        fig8=report(
            "results/{ds}/figures/fig8-errors-{model}.png",
            caption="../report/fig8-errors.rst",
            category="Segmentation",
        ),
        fig8_pdf="results/{ds}/figures/fig8-errors-{model}.pdf",
    log:
        "results/{ds}/logs/plot_segmentation_examples-{model}.log",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    params:
        n_examples=config["figures"]["segmentation_examples"],
        class_names=CLASS_NAMES,
        class_colors=CLASS_COLORS,
    script:
        "../scripts/plot_segmentation_examples.py"


rule score_segmenter_transfer:
    input:
        model="results/{ds}/segmenter/{model}/best/model.safetensors",
        metadata=METADATA,
        real=lambda wildcards: f"{reference_dir()}/metadata.csv",
        code=code("score_segmenter_transfer"),
    output:
        scores="results/{ds}/segmenter/{model}/transfer-uhcs24.csv",
    log:
        "results/{ds}/logs/score_segmenter_transfer-{model}.log",
    benchmark:
        "results/{ds}/benchmarks/score_segmenter_transfer-{model}.tsv"
    conda:
        "../../envs/segment.yaml"
    resources:
        **compute("segment"),
    script:
        "../scripts/score_segmenter_transfer.py"


rule cross_validate_segmenter:
    input:
        folds=lambda wildcards: cv_folds_file(),
        code=code("cross_validate_segmenter"),
    output:
        scores="results/{ds}/segmenter-cv/{labels}/{variant}/fold{fold}/scores.csv",
        history="results/{ds}/segmenter-cv/{labels}/{variant}/fold{fold}/train_log.csv",
        model="results/{ds}/segmenter-cv/{labels}/{variant}/fold{fold}/best/model.safetensors",
    log:
        "results/{ds}/logs/cross_validate_segmenter-{labels}-{variant}-fold{fold}.log",
    benchmark:
        "results/{ds}/benchmarks/cross_validate_segmenter-{labels}-{variant}-fold{fold}.tsv"
    wildcard_constraints:
        labels=CV_WILDCARDS["labels"],
        variant=CV_WILDCARDS["variant"],
        fold=r"\d+",
    conda:
        "../../envs/segment.yaml"
    resources:
        **compute("segment"),
    params:
        folder=lambda wildcards: CV["folder"],
        layout=lambda wildcards: CV_LAYOUT,
        train=lambda wildcards: plan.cv_fold_params(config),
        classes=len(CLASS_NAMES),
    script:
        "../scripts/cross_validate_segmenter.py"


rule cross_validation_tables:
    input:
        scores=lambda wildcards: sum(cv_fold_files(wildcards).values(), []),
        code=code("cross_validation_tables"),
    output:
        prior=report(
            "results/{ds}/tables/table3-cv-prior-methods.csv",
            caption="../report/table3-cv.rst",
            category="Tables",
        ),
        per_class_iou=report(
            "results/{ds}/tables/table4-cv-per-class-iou.csv",
            caption="../report/table4-cv.rst",
            category="Tables",
        ),
        per_class_errors=report(
            "results/{ds}/tables/table5-cv-per-class-errors.csv",
            caption="../report/table5-cv.rst",
            category="Tables",
        ),
    log:
        "results/{ds}/logs/cross_validation_tables.log",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    params:
        groups=cv_fold_files,
        class_names=CLASS_NAMES,
    script:
        "../scripts/cross_validation_tables.py"


rule per_group_segmenter_iou:
    # Data sets split by group (split.by): IoU of the descriptor phase (MA for
    # Aachen-Heerlen, Table 7a) per group of the validation images.
    input:
        masks=rules.segment_validation_images.output.masks,
        metadata=METADATA,
        split=SPLIT,
        code=code("per_group_segmenter_iou"),
    output:
        table=report(
            "results/{ds}/tables/per-group-segmenter-iou-{model}.csv",
            caption="../report/per-group-segmenter-iou.rst",
            category="Tables",
        ),
        markdown="results/{ds}/tables/per-group-segmenter-iou-{model}.md",
    log:
        "results/{ds}/logs/per_group_segmenter_iou-{model}.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        **compute("analysis"),
    params:
        group=config["split"].get("by", "condition"),
        phase=config["descriptors"]["phase"],
    script:
        "../scripts/per_group_segmenter_iou.py"


rule plot_cv_examples:
    input:
        model="results/{ds}/segmenter-cv/{labels}/{variant}/fold{fold}/best/model.safetensors",
        code=code("plot_cv_examples"),
    output:
        fig7=report(
            "results/{ds}/figures/fig7-cv-{labels}-{variant}-fold{fold}.png",
            caption="../report/fig7-cv.rst",
            category="Segmentation",
        ),
        fig7_pdf="results/{ds}/figures/fig7-cv-{labels}-{variant}-fold{fold}.pdf",
        fig8=report(
            "results/{ds}/figures/fig8-cv-{labels}-{variant}-fold{fold}.png",
            caption="../report/fig8-cv.rst",
            category="Segmentation",
        ),
        fig8_pdf="results/{ds}/figures/fig8-cv-{labels}-{variant}-fold{fold}.pdf",
    log:
        "results/{ds}/logs/plot_cv_examples-{labels}-{variant}-fold{fold}.log",
    wildcard_constraints:
        labels=CV_WILDCARDS["labels"],
        variant=CV_WILDCARDS["variant"],
        fold=r"\d+",
    conda:
        "../../envs/segment.yaml"
    resources:
        **compute("segment"),
    params:
        folder=lambda wildcards: CV["folder"],
        layout=lambda wildcards: CV_LAYOUT,
        n_examples=config.get("figures", {}).get("segmentation_examples", 3),
        class_names=CLASS_NAMES,
        class_colors=CLASS_COLORS,
    script:
        "../scripts/plot_cv_examples.py"


rule plot_cv_convergence:
    input:
        logs=lambda wildcards: sum(
            cv_fold_files(wildcards, [wildcards.labels], "train_log.csv").values(), []
        ),
        code=code("plot_cv_convergence"),
    output:
        png=report(
            "results/{ds}/figures/cv-convergence-{labels}.png",
            caption="../report/cv-convergence.rst",
            category="Segmentation",
        ),
        pdf="results/{ds}/figures/cv-convergence-{labels}.pdf",
    log:
        "results/{ds}/logs/plot_cv_convergence-{labels}.log",
    wildcard_constraints:
        labels=CV_WILDCARDS["labels"],
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    params:
        groups=lambda wildcards: {
            key.split("|")[1]: files
            for key, files in cv_fold_files(
                wildcards, [wildcards.labels], "train_log.csv"
            ).items()
        },
        min_epochs=lambda wildcards: CV.get("min_epochs", 0),
    script:
        "../scripts/plot_cv_convergence.py"
