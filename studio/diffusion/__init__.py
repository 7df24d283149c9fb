"""Noise schedules, samplers (diffusers schedulers), the denoising loop with guidance, losses.

Shared by the image, vfx and diffscaler plugins. The network is always passed in as a callable.
"""

from studio.diffusion.losses import (GaussianTerms, KDWeights, diffusion_loss, hybrid_kd_terms, mean_flat,
                                     split_learned_sigma, vlb_term)
from studio.diffusion.noise import mixed_noise
from studio.diffusion.objective import DDPMTraining
from studio.diffusion.sampling import (AutoGuide, ClassifierGuide, NoiseSelection, concat_cond, guided_eps, sample,
                                       skipped_steps)
from studio.diffusion.schedulers import (SAMPLERS, NoiseSpec, add_noise, make_scheduler, sample_timesteps,
                                         scheduler_from_spec, timestep_weights)

__all__ = [
    "SAMPLERS", "NoiseSpec", "make_scheduler", "scheduler_from_spec", "add_noise", "sample_timesteps", "timestep_weights",
    "DDPMTraining", "mixed_noise", "sample", "skipped_steps", "guided_eps", "AutoGuide", "ClassifierGuide", "NoiseSelection", "concat_cond",
    "GaussianTerms", "KDWeights", "diffusion_loss", "hybrid_kd_terms", "mean_flat", "split_learned_sigma", "vlb_term",
]
