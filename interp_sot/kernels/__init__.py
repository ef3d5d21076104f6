"""Device-side building blocks of the hot loops (fixed-shape, sync-free; compiled with inductor on CUDA)."""
