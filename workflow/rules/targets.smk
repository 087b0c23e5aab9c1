# The targets of the default run: every table and figure a config asks for, by the stages
# it configures. Set names and grids are microgen.plan's; folds and figure variables are
# read in common.smk.


def all_outputs():
    return dataset_outputs() + volume_outputs()


def dataset_outputs():
    if not DS:
        return []
    outputs = [
        f"results/{DS}/split.csv",
        f"results/{DS}/tables/split-summary.md",
        f"results/{DS}/figures/fig-a1-dataset.png",
    ]
    if SOURCE in ("synthetic", "folder"):
        # Data sets with masks: descriptors of the ground-truth / annotated masks, and the
        # segmenters trained and scored on them.
        outputs.append(f"results/{DS}/descriptors/truth.parquet")
        if config.get("segment"):
            outputs += [
                f"results/{DS}/tables/table4-losses.csv",
                f"results/{DS}/descriptors/real-{SEGMENTER}.parquet",
                f"results/{DS}/figures/fig7-segmentation-{SEGMENTER}.png",
            ]
            if plan.encoder_comparison(config):
                outputs.append(f"results/{DS}/figures/figC1-encoders.png")
        if CV:
            outputs.append(f"results/{DS}/tables/table3-cv-prior-methods.csv")
            outputs += [
                f"results/{DS}/figures/cv-convergence-{labels}.png"
                for labels in CV["label_versions"]
            ]
            # Figs 7 and 8 on real images: the first fold, first variant, each label version.
            first = CV["variants"][0]
            outputs += [
                f"results/{DS}/figures/fig7-cv-{labels}-{first}-fold{cv_folds()[0]}.png"
                for labels in CV["label_versions"]
            ]
        if (config.get("segment") or {}).get("transfer_uhcs24") and reference_dir():
            outputs.append(f"results/{DS}/segmenter/{SEGMENTER}/transfer-uhcs24.csv")
    if plan.split_group(config):
        # Split by group (Aachen-Heerlen steel types): Table 7b and the MA IoU per group, from
        # masks alone (area fractions and IoU need no pixel size, which A-H PNGs lack).
        outputs.append(f"results/{DS}/tables/per-group-area-fraction.csv")
        if config.get("segment"):
            outputs.append(
                f"results/{DS}/tables/per-group-segmenter-iou-{SEGMENTER}.csv"
            )
    outputs += [
        f"results/{DS}/samples/{m}/{mode}.csv"
        for m, mode in plan.generated_sample_sets(config)
    ]
    if config.get("generate", {}).get("probe") and config.get("segment"):
        outputs += [
            f"results/{DS}/tables/parameter-awareness-{m}.csv"
            for m, mode in plan.generated_sample_sets(config)
            if mode == "full_text"
        ]
    if config.get("generate", {}).get("models") and config.get("evaluate"):
        outputs += [
            f"results/{DS}/tables/condition-use-{m}.md"
            for m in config["generate"]["models"]
        ]
    if config.get("evaluate") and config.get("segment") and plan.all_sets(config):
        outputs += [
            f"results/{DS}/tables/table6-correlation-errors.csv",
            f"results/{DS}/figures/fig14-correlation-envelopes.png",
            f"results/{DS}/tables/table1-2-generative-metrics.csv",
            f"results/{DS}/figures/figB9-tsne.png",
            f"results/{DS}/figures/fig9-segmented-samples.png",
        ]
        if SOURCE == "synthetic":
            outputs += [
                f"results/{DS}/tables/ground-truth-fidelity.csv",
                f"results/{DS}/tables/microconstituent-agreement.md",
            ]
        outputs += [
            f"results/{DS}/figures/{g}-samples.png" for g in plan.sample_grids(config)
        ]
        outputs += plan.transfer_outputs(config, DS)
        outputs += [
            f"results/{DS}/figures/conditions-{v}-{split}.png"
            for v in figure_variables("comparison_variables")
            for split in ("seen", "unseen")
        ]
        outputs += [
            f"results/{DS}/figures/descriptor-trends-{v}.png"
            for v in figure_variables("trend_variables")
        ]
    outputs += [
        f"results/{DS}/samples/{b}/parameter_only.csv"
        for b in config.get("generate", {}).get("baselines", {})
    ]
    if config.get("generate", {}).get("baselines"):
        outputs.append(f"results/{DS}/tables/table-b2-baselines.csv")
    if config.get("generate", {}).get("models"):
        outputs += [
            f"results/{DS}/tables/table-b1-finetune.csv",
            f"results/{DS}/tables/table-b3-parameters.csv",
        ]
    outputs += plan.condition_table_outputs(config, DS)
    if SOURCE == "synthetic":
        if reference_dir():
            outputs.append(f"results/{DS}/figures/real-vs-synthetic.png")
        else:
            logger.info(
                "reference.uhcs24 not found here: skipping real-vs-synthetic.png"
            )
    return outputs


def volume_outputs():
    outputs = []
    if VDS:
        outputs += [
            f"results/{VDS}/volumes/features.parquet",
            f"results/{VDS}/volumes/split.csv",
        ]
        if "ldm" in config["volumes"]:
            outputs += [
                f"results/{VDS}/tables/r2-samplers.csv",
                f"results/{VDS}/figures/target-vs-measured.png",
            ]
        outputs += plan.target_table_outputs(config, VDS)
    return outputs
