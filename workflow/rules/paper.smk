# The paper in one DAG (config/paper.yaml): each part of the paper is this same workflow run
# as a Snakemake module with its own config (microgen.paper), its rules prefixed with the
# part's name. Parts meet through files: the generation part applies the segmenter the
# segmentation part trains (segment.pretrained). The index lists every table and figure.
from microgen.codegraph import rule_code
from microgen.paper import part_configs, part_results
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.14")


validate(config, "../schemas/paper.schema.yaml")
try:
    PARTS = part_configs(config["paper"])
except ValueError as err:
    raise WorkflowError(f"{err}") from None
INDEX = config["paper"]["index"]


def code(script):
    """Library files the rule's script can execute (microgen.codegraph), as inputs."""
    return rule_code(script, workflow.basedir)


if "segmentation" in PARTS:

    module segmentation:
        snakefile:
            "../../Snakefile"
        config:
            PARTS["segmentation"]

    use rule * from segmentation as segmentation_*


if "generation" in PARTS:

    module generation:
        snakefile:
            "../../Snakefile"
        config:
            PARTS["generation"]

    use rule * from generation as generation_*


if "transfer" in PARTS:

    module transfer:
        snakefile:
            "../../Snakefile"
        config:
            PARTS["transfer"]

    use rule * from transfer as transfer_*


if "volumes" in PARTS:

    module volumes:
        snakefile:
            "../../Snakefile"
        config:
            PARTS["volumes"]

    use rule * from volumes as volumes_*


def part_outputs():
    """Every output of every part: the targets of each part's own default run."""
    return [f for name in PARTS for f in getattr(rules, f"{name}_all").input]


rule paper_index:
    # Every table and figure of the paper, the file that reproduces it, the paper's numbers
    # beside ours; what a part cannot produce is listed with the reason.
    input:
        index=INDEX,
        outputs=part_outputs(),
        code=code("paper_index"),
    output:
        md=report(
            "results/paper/index.md",
            caption="../report/paper-index.rst",
            category="Paper",
        ),
        csv="results/paper/index.csv",
    log:
        "results/paper/logs/paper_index.log",
    conda:
        "../../envs/figures.yaml"
    params:
        datasets={name: part_results(part) for name, part in PARTS.items()},
        smoke=config["paper"]["smoke"],
    script:
        "../scripts/paper_index.py"
