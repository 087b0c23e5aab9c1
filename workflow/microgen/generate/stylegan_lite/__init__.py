"""``stylegan-lite``: a small conditional style-based GAN baseline (paper Table B2).

The paper's GAN baseline is StyleGAN3. This is *not* StyleGAN3 (no alias-free filtered
layers, no Fourier-feature input): it is a compact StyleGAN2-style generator, named for
what it is, trained with the paper's Table B2 hyperparameters.

Generator
    Mapping network: 8 fully connected layers (equalised learning rate, lr multiplier
    0.01, leaky ReLU) from ``normalise(z) ++ normalise(embed(condition))`` to ``w``, where
    ``embed`` is a :class:`~microgen.generate.common.ConditionEmbedder` (MLP of the
    normalised continuous variables + one embedding table per categorical variable).
    Synthesis network: a learned 4×4 constant, then per resolution 8, 16, …, R a block of
    bilinear ×2 upsampling and two 3×3 modulated convolutions with weight demodulation
    (StyleGAN2), per-pixel noise inputs with learned strengths, bias and leaky ReLU; a
    1×1 modulated ``toRGB`` (no demodulation) per resolution summed over upsampled
    outputs (the StyleGAN2 "skip" generator: the image grows progressively to R). Every
    layer gets the same ``w`` (no style mixing). A running mean of ``w`` is tracked.
Discriminator
    StyleGAN2 residual discriminator (fromRGB, residual blocks with average-pool
    downsampling to 4×4, minibatch standard deviation, conv, FC) producing features
    φ(x); the output is ``linear(φ) + <embed(condition), φ>`` (projection discriminator,
    Miyato & Koyama 2018).
Training
    Non-saturating logistic loss; R1 on real images with γ = 5, applied *lazily* every
    ``r1_interval`` (16) discriminator steps and scaled by that interval (as StyleGAN2; set
    ``r1_interval=1`` for every step); Adam with β = (0, 0.99), generator lr 0.0015,
    discriminator lr 0.0001, batch 12 (Table B2); horizontal flips; an exponential moving
    average of the generator weights (β 0.999) is what is saved and sampled. No path
    length regularisation, no adaptive augmentation.

Layout of a model directory::

    generator/              EMA generator: config.json + diffusion_pytorch_model.safetensors
    discriminator/          config.json + diffusion_pytorch_model.safetensors
    condition_encoder.json
    train_config.json       StyleGANLiteTrainConfig

plus ``train_log.csv`` (step, loss_d, loss_g, r1, seconds_per_step). Training checkpoints
to ``checkpoints/step-NNNNNNN/`` (:class:`microgen.checkpoint.Checkpoints`): ``model/``
(the layout above), ``training_state`` (the raw generator's weights and both Adam states:
what only continuing needs) and ``train_log.csv`` up to that step. A run resumes from the
newest checkpoint and, at the end of every run (also one with nothing left to train),
writes the model directory and ``train_log.csv`` from it. A finished run keeps that
checkpoint without its training state, unless ``continuable``.

Modules
-------
:mod:`.layers`
    Equalised-learning-rate layers, modulated convolution and the synthesis layers.
:mod:`.models`
    :class:`~.models.StyleGANLiteGenerator` and :class:`~.models.StyleGANLiteDiscriminator`.
:mod:`.losses`
    Logistic GAN losses and the R1 penalty.
:mod:`.train`
    :func:`~.train.train_stylegan_lite`.
:mod:`.sample`
    :class:`~.sample.StyleGANLite` and :func:`~.sample.sample_stylegan_lite`.
"""
