# Generation: parameter-aware SD3 (tiny offline base or SD3.5 from a hub id / local path) and
# SDXL (`family: sdxl` on a model entry: tiny offline SDXL base, hub id or local path),
# LoRA / DreamBooth + LoRA / DoRA fine-tuning per model variant × prompt mode, and sampling
# of every validation condition in the samples contract and of every condition table the
# user gives (generate.condition_tables).
import json


rule validation_conditions:
    input:
        metadata=METADATA,
        split=SPLIT,
        schema=SCHEMA,
        code=code("validation_conditions"),
    output:
        conditions=CONDITIONS,
    log:
        "results/{ds}/logs/validation_conditions.log",
    conda:
        "../../envs/data.yaml"
    resources:
        **compute("data"),
    script:
        "../scripts/validation_conditions.py"


rule pretrain_tiny_base:
    input:
        metadata=METADATA,
        split=SPLIT,
        code=code("pretrain_tiny_base"),
    output:
        base="results/{ds}/models/tiny-base/model_index.json",
        log_csv="results/{ds}/models/tiny-base/pretrain_log.csv",
    log:
        "results/{ds}/logs/pretrain_tiny_base.log",
    benchmark:
        "results/{ds}/benchmarks/pretrain_tiny_base.tsv"
    # First of the run's longest chain (pre-training, fine-tunes, samples, evaluation): with
    # equal priorities the scheduler started it after 96 s in one embedded run and after
    # 687 s in another, and that run took 25 min instead of 20 on 2 cores.
    priority: 10
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("train"),
    params:
        pretrain=lambda wildcards: plan.pretrain_params(config, "sd3"),
    script:
        "../scripts/pretrain_tiny_base.py"


rule pretrain_tiny_sdxl_base:
    # The tiny SDXL base of `family: sdxl` models on `base: tiny`: the same pre-training
    # with a U-Net (generate.pretrain, its `sdxl` sub-block overriding).
    input:
        metadata=METADATA,
        split=SPLIT,
        code=code("pretrain_tiny_base"),
    output:
        base="results/{ds}/models/tiny-sdxl-base/model_index.json",
        log_csv="results/{ds}/models/tiny-sdxl-base/pretrain_log.csv",
    log:
        "results/{ds}/logs/pretrain_tiny_sdxl_base.log",
    benchmark:
        "results/{ds}/benchmarks/pretrain_tiny_sdxl_base.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("train"),
    params:
        pretrain=lambda wildcards: plan.pretrain_params(config, "sdxl"),
    script:
        "../scripts/pretrain_tiny_base.py"


rule fine_tune:
    # A model trained in one process (at most one GPU); several: rule fine_tune_ddp.
    input:
        base=base_model,
        metadata=METADATA,
        split=SPLIT,
        schema=SCHEMA,
        code=code("fine_tune"),
    output:
        lora="results/{ds}/models/{model}/{mode}/pytorch_lora_weights.safetensors",
        history="results/{ds}/models/{model}/{mode}/train_log.csv",
        parameters="results/{ds}/models/{model}/{mode}/parameters.csv",
    log:
        "results/{ds}/logs/fine_tune-{model}-{mode}.log",
    benchmark:
        "results/{ds}/benchmarks/fine_tune-{model}-{mode}.tsv"
    wildcard_constraints:
        model=plan.model_names(config, ddp=False),
        mode="full_text|text_only|parameter_only",
    # The longest chain goes on from pre-training: one embedded run left a fine-tune until
    # 887 s, 412 s after its base was ready.
    priority: 5
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("train", gpus=min(config["compute"]["train"]["gpus"], 1)),
    params:
        base=base_model_id,
        finetune=lambda wildcards: plan.finetune_params(
            config, wildcards.model, wildcards.mode
        ),
    script:
        "../scripts/fine_tune.py"


rule fine_tune_ddp:
    # The same fine-tune on several GPUs (a model's gpus, or compute.train's): one process
    # per GPU under DDP, started by torch's launcher, hence a shell rule; batch_size is per
    # process (the paper's SDXL rows: four GPUs).
    input:
        base=base_model,
        metadata=METADATA,
        split=SPLIT,
        schema=SCHEMA,
        launcher=script_path("fine_tune_ddp"),
        code=code("fine_tune_ddp"),
    output:
        lora="results/{ds}/models/{model}/{mode}/pytorch_lora_weights.safetensors",
        history="results/{ds}/models/{model}/{mode}/train_log.csv",
        parameters="results/{ds}/models/{model}/{mode}/parameters.csv",
    log:
        "results/{ds}/logs/fine_tune-{model}-{mode}.log",
    benchmark:
        "results/{ds}/benchmarks/fine_tune-{model}-{mode}.tsv"
    wildcard_constraints:
        model=plan.model_names(config, ddp=True),
        mode="full_text|text_only|parameter_only",
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("train", gpus=finetune_gpus),
    params:
        base=base_model_id,
        processes=finetune_gpus,
        finetune=lambda wildcards: json.dumps(
            plan.finetune_params(config, wildcards.model, wildcards.mode)
        ),
    shell:
        "python -m torch.distributed.run --standalone --nproc_per_node {params.processes}"
        " {input.launcher} --base {params.base:q} --metadata {input.metadata:q}"
        " --split {input.split:q} --schema {input.schema:q} --lora {output.lora:q}"
        " --settings {params.finetune:q} > {log:q} 2>&1"


rule sample_model:
    input:
        base=base_model,
        lora="results/{ds}/models/{model}/{mode}/pytorch_lora_weights.safetensors",
        conditions=CONDITIONS,
        code=code("sample_model"),
    output:
        images=directory("results/{ds}/samples/{model}/{mode}"),
        samples="results/{ds}/samples/{model}/{mode}.csv",
    log:
        "results/{ds}/logs/sample_model-{model}-{mode}.log",
    benchmark:
        "results/{ds}/benchmarks/sample_model-{model}-{mode}.tsv"
    wildcard_constraints:
        model=plan.model_names(config),
        mode="full_text|text_only|parameter_only",
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("sample"),
    params:
        base=base_model_id,
        sampling=lambda wildcards: plan.sampling_params(config, wildcards.model),
    script:
        "../scripts/sample_model.py"


rule sample_condition_table:
    # A user's conditions, drawn as the validation samples are (same prompts, conditioner
    # and seeds); checked against the schema and the training rows first.
    input:
        base=base_model,
        lora="results/{ds}/models/{model}/{mode}/pytorch_lora_weights.safetensors",
        table=lambda wildcards: plan.condition_tables(config)[wildcards.table],
        metadata=METADATA,
        split=SPLIT,
        schema=SCHEMA,
        code=code("sample_condition_table"),
    output:
        images=directory(f"{GENERATED}/images"),
        samples=f"{GENERATED}/samples.csv",
    log:
        "results/{ds}/logs/sample_condition_table-{model}-{mode}-{table}.log",
    benchmark:
        "results/{ds}/benchmarks/sample_condition_table-{model}-{mode}-{table}.tsv"
    wildcard_constraints:
        model=plan.model_names(config),
        mode="full_text|text_only|parameter_only",
        table=plan.table_names(plan.condition_tables(config)),
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("sample"),
    params:
        base=base_model_id,
        sampling=lambda wildcards: plan.table_sampling_params(config, wildcards.model),
    script:
        "../scripts/sample_condition_table.py"


rule train_baseline:
    input:
        metadata=METADATA,
        split=SPLIT,
        schema=SCHEMA,
        code=code("train_baseline"),
    output:
        history="results/{ds}/models/{baseline}/train_log.csv",
    log:
        "results/{ds}/logs/train_baseline-{baseline}.log",
    benchmark:
        "results/{ds}/benchmarks/train_baseline-{baseline}.tsv"
    wildcard_constraints:
        baseline="ddpm|stylegan-lite",
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("train"),
    params:
        train=lambda wildcards: plan.baseline_train_params(config, wildcards.baseline),
    script:
        "../scripts/train_baseline.py"


rule sample_baseline:
    input:
        history="results/{ds}/models/{baseline}/train_log.csv",
        conditions=CONDITIONS,
        schema=SCHEMA,
        code=code("sample_baseline"),
    output:
        images=directory("results/{ds}/samples/{baseline}/parameter_only"),
        samples="results/{ds}/samples/{baseline}/parameter_only.csv",
    log:
        "results/{ds}/logs/sample_baseline-{baseline}.log",
    benchmark:
        "results/{ds}/benchmarks/sample_baseline-{baseline}.tsv"
    wildcard_constraints:
        baseline="ddpm|stylegan-lite",
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("sample"),
    params:
        sampling=lambda wildcards: plan.baseline_sampling_params(
            config, wildcards.baseline
        ),
    script:
        "../scripts/sample_baseline.py"


rule sample_baseline_condition_table:
    input:
        history="results/{ds}/models/{baseline}/train_log.csv",
        table=lambda wildcards: plan.condition_tables(config)[wildcards.table],
        metadata=METADATA,
        split=SPLIT,
        schema=SCHEMA,
        code=code("sample_baseline_condition_table"),
    output:
        images=directory(
            "results/{ds}/generated/{baseline}/parameter_only/{table}/images"
        ),
        samples="results/{ds}/generated/{baseline}/parameter_only/{table}/samples.csv",
    log:
        "results/{ds}/logs/sample_baseline_condition_table-{baseline}-{table}.log",
    wildcard_constraints:
        baseline="ddpm|stylegan-lite",
        table=plan.table_names(plan.condition_tables(config)),
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("sample"),
    params:
        sampling=lambda wildcards: plan.baseline_table_params(
            config, wildcards.baseline
        ),
    script:
        "../scripts/sample_baseline_condition_table.py"


rule baseline_table:
    # Table B2 from the config alone: it is rewritten when a baseline's entry changes.
    input:
        code=code("baseline_table"),
    output:
        csv=report(
            "results/{ds}/tables/table-b2-baselines.csv",
            caption="../report/table-b2-baselines.rst",
            category="Tables",
        ),
        md="results/{ds}/tables/table-b2-baselines.md",
    log:
        "results/{ds}/logs/baseline_table.log",
    conda:
        "../../envs/figures.yaml"
    resources:
        **compute("figures"),
    params:
        baselines=config["generate"].get("baselines", {}),
    script:
        "../scripts/baseline_table.py"


rule finetune_table:
    # Table B1 from the config alone: it is rewritten when a model's entry changes.
    input:
        code=code("finetune_table"),
    output:
        csv=report(
            "results/{ds}/tables/table-b1-finetune.csv",
            caption="../report/table-b1-finetune.rst",
            category="Tables",
        ),
        md="results/{ds}/tables/table-b1-finetune.md",
    log:
        "results/{ds}/logs/finetune_table.log",
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("figures"),
    params:
        models=plan.finetune_table_params(config),
    script:
        "../scripts/finetune_table.py"


rule parameter_counts:
    # Table B3: every model's base built from its configs on the meta device (no weights),
    # with the adapters and conditioner its fine-tune adds. A hub base's configs download
    # (or come from the cache); the tiny base is read from its folder.
    input:
        bases=lambda wildcards: plan.parameter_table_files(config, wildcards.ds),
        schema=SCHEMA,
        code=code("parameter_counts"),
    output:
        csv=report(
            "results/{ds}/tables/table-b3-parameters.csv",
            caption="../report/table-b3-parameters.rst",
            category="Tables",
        ),
        md="results/{ds}/tables/table-b3-parameters.md",
    log:
        "results/{ds}/logs/parameter_counts.log",
    conda:
        "../../envs/train.yaml"
    resources:
        **compute("figures"),
    params:
        models=lambda wildcards: plan.parameter_table_params(config, wildcards.ds),
    script:
        "../scripts/parameter_counts.py"
