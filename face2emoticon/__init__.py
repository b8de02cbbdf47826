"""face2emoticon stage: a conditional StyleGAN2 and what trains, converts, blends and inverts it.

* :mod:`~face2emoticon.config` -- ``GeneratorConfig`` / ``DiscriminatorConfig`` (frozen, saved as JSON)
* :mod:`~face2emoticon.networks` -- ``Generator`` (``mapping``, ``synthesis``, ``mean_w``, ``mix``) and
  ``Discriminator``; parameters named by resolution (``synthesis.b16.conv0.weight``)
* :mod:`~face2emoticon.checkpoint` -- ``save_generator`` / ``load_generator`` (safetensors + JSON, strict) and
  the resumable training state
* :mod:`~face2emoticon.foreign` -- rosinality ``.pt`` import, restricted NVlabs ``.pkl`` reader
* :mod:`~face2emoticon.train` -- ``emoget train-gan`` (ADA, lazy R1, EMA, bf16, resume, fine-tuning)
* :mod:`~face2emoticon.blend` -- layer-swap blending (``emoget blend``)
* :mod:`~face2emoticon.lpips`, :mod:`~face2emoticon.invert`, :mod:`~face2emoticon.encoder`,
  :mod:`~face2emoticon.metrics` -- LPIPS, GAN inversion, the inversion encoder, FD-VGG16 / KID

Nothing is imported here, so ``import face2emoticon`` stays cheap; import the submodules.
"""
