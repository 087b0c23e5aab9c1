# microgen: parameter-aware microstructure generation, validated end to end.
# `snakemake --cores all` runs the embedded default (config/config.yaml); a real setting is
# `snakemake --cores all --configfile config/uhcs24.yaml`. Every config file is validated
# against workflow/schemas/config.schema.yaml before any job runs.

# A config file given with --configfile replaces the embedded default instead of being
# merged into it, so keys of the default never leak into a real setting.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# config/paper.yaml: every part of the paper as a module of this same workflow.
if "paper" in config:

    include: "workflow/rules/paper.smk"

    rule paper:
        default_target: True
        input:
            part_outputs(),
            "results/paper/index.md",

else:

    include: "workflow/rules/common.smk"
    include: "workflow/rules/targets.smk"

    report: "workflow/report/workflow.rst"

    wildcard_constraints:
        ds=DS or "no-dataset",
        vds=VDS or "no-volumes",

    # Stages a config does not configure are left out of the DAG.
    if "dataset" in config:

        include: "workflow/rules/data.smk"
        include: "workflow/rules/analyze.smk"
        include: "workflow/rules/figures.smk"

    if "dataset" in config and "segment" in config:

        include: "workflow/rules/segment.smk"

    if "dataset" in config and "generate" in config:

        include: "workflow/rules/generate.smk"

    if "dataset" in config and {"generate", "evaluate", "segment"} <= set(config):

        include: "workflow/rules/evaluate.smk"

    if "volumes" in config:

        include: "workflow/rules/volumes.smk"

    rule all:
        default_target: True
        input:
            all_outputs(),
