"""Synthetic ultra-high-carbon-steel (UHCS) SEM micrographs with exact ground truth.

The generator stands in for the UHCS micrograph data set (Hecht et al. / DeCost et al.): it maps a
processing condition (anneal temperature, anneal time, cooling, magnification, primary
microconstituent; value sets from the paper's Table A1) to an 8-bit SEM-like image and a label
mask with the UHCS class ids

=====  =========================================================
 id     class
=====  =========================================================
 0      ferritic matrix (incl. the ferrite between pearlite lamellae)
 1      proeutectoid cementite network (prior-austenite grain boundaries)
 2      eutectoid cementite: spheroidite particles and pearlite lamellae
 3      Widmanstätten cementite laths
=====  =========================================================

Structure is built from a small set of stated process->structure laws (each a public function
with its equation and constants): LSW coarsening of spheroidite particles, LSW particle size
distribution, lever-rule cementite fraction with an effective (Cr-shifted) Acm line,
prior-austenite grain growth, network band and denuded zone widths, Widmanstätten lath geometry
and a cooling-dependent pearlite interlamellar spacing. The mask is the exact truth of what was
drawn: rendering (edge brightening, texture, blur, noise) only reads it.

Pearlite labelling
------------------
Pearlite cementite lamellae are labelled class 2 (:data:`PEARLITE_LAMELLA_CLASS`). Spheroidite is
spheroidised *eutectoid* cementite, i.e. the same phase with the same origin as the lamellae it
forms from, whereas class 1 (network) and class 3 (Widmanstätten) are *proeutectoid* cementite
morphologies; labelling lamellae as 1 would therefore contradict the UHCS semantics, and
labelling them 0 would make the mask disagree with the bright lamellae drawn in the image.
Consequence for users: class-2 connected components in images whose microconstituent contains
"pearlite" include elongated lamellae, so particle-size statistics should be taken from
"spheroidite", "network" and "spheroidite+widmanstatten" images (or filtered by elongation).

Sub-pixel features
------------------
Particles whose equivalent diameter is below one pixel are *unresolved*: instead of one pixel per
particle (which would inflate the area fraction by orders of magnitude at low magnification) their
total area is drawn as single random class-2 pixels, so the class-2 area fraction keeps following
the law while connected-component sizes are only physical for resolved particles. Every resolved
particle covers at least the pixel containing its centre. Resolved pearlite lamellae and laths
(period >= 2 px) are drawn at least 1 px thick (never more than half the period) so that they stay
continuous; unresolved ones keep their true thickness/period ratio, so pixel-centre sampling
gives the right area fraction as speckle. Drawn values are reported in ``truth``.

Framing
-------
A micrograph is labelled by what it shows, so the field of an image whose microconstituent has
a network or laths is framed on that feature: the grains are redrawn (the stage moved) until
it covers at least 2 % of the field (``truth["framing_attempts"]`` says how often). At
1964-4910x a 5-12 µm field misses the boundaries of 20-40 µm prior-austenite grains about
half the time, and such an image could not show the microconstituent it is labelled with.

Modules
-------
:mod:`.conditions`
    Table A1 value sets, :class:`~.conditions.Condition` and :func:`~.conditions.sample_conditions`.
:mod:`.laws`
    The process->structure laws and their constants.
:mod:`.geometry`
    Pixel-space primitives: smooth noise, Voronoi grains, particle placement and rasterising.
:mod:`.structure`
    The class ids and the drawing of each feature (pearlite, network, laths, particles) into
    the mask.
:mod:`.render`
    The SEM look of a mask.
:mod:`.generator`
    :func:`~.generator.generate`: one micrograph from a condition, composed of the steps above.
:mod:`.dataset`
    A prepared data set of generated micrographs.
"""
