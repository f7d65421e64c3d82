"""Training on several devices or machines (tf.distribute) and in mixed precision (bfloat16, float16).

    python pix2pix.py --strategy mirrored            # every GPU of this machine
    python pix2pix.py --strategy multiworker         # one process per machine, cluster in $TF_CONFIG
    python pix2pix.py --precision bf16               # bfloat16 compute, float32 weights and losses

Pieces:
    make_strategy(name)             the tf.distribute strategy of --strategy
    is_chief(strategy)              True in the one process that writes outputs
    resolve_precision(name)         fp32, bf16 or fp16 for --precision (auto: bf16 where it is native)
    precision_policy(precision)     context: Keras' dtype policy of it while the nets are built
    with_loss_scaling(optimizer)    the optimizer, loss-scaled when the nets compute in float16
    agree_on_finite(grads)          all replicas skip a loss-scaled step together, or none does
    adapt_to_strategy(model)        what a Pix2Pix built under strategy.scope() needs: synchronised
                                    BatchNorm and two workarounds for Keras 3.15 internals
    ReplicatedPix2Pix               Pix2Pix with all of the above: what tools/training.py builds when
                                    a run has several replicas or computes in float16
Pix2Pix.apply_loss is the one place that turns a loss into applied gradients: on one device
tape.gradient + apply_gradients; ReplicatedPix2Pix adds replica and loss scaling.
Nothing here runs at import.
"""
import contextlib
import json
import os

import keras
import tensorflow as tf

from config import PRECISIONS, STRATEGIES
from pix2pix import Pix2Pix

PRECISION_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}  # Keras' names
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}  # /proc/cpuinfo flags of CPUs with bfloat16 arithmetic


def split_cpu(devices=2):
    """Names of the logical CPU devices, after splitting the CPU into `devices` of them if
    TensorFlow has not started yet (it must not have run an op). Lets MirroredStrategy be tried
    and tested without GPUs: the replicas share the same cores, so it is no faster."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    if not tf.config.get_logical_device_configuration(cpu):
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
        except RuntimeError:  # TensorFlow already started: keep the devices it has
            pass
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def read_tf_config():
    """The cluster description in $TF_CONFIG as a dict, or ValueError saying what is wrong with it.
    Example for worker 0 of two: {"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
    "task": {"type": "worker", "index": 0}}."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable: "
                         '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
                         '"index": 0}} on the first machine, index 1 on the second '
                         "(docs/distributed.md)")
    try:
        config = json.loads(text)
        workers, task = config["cluster"]["worker"], config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"TF_CONFIG is not usable ({type(e).__name__}: {e}); it must be JSON with "
                         f'"cluster": {{"worker": [...]}} and "task": {{"type": ..., "index": ...}}, '
                         f"got {text[:200]!r}") from e
    if task.get("type") == "worker" and not 0 <= index < len(workers):
        raise ValueError(f"TF_CONFIG: task index {index} but the cluster has {len(workers)} workers")
    return config


def make_strategy(name="none", cpu_devices=2):
    """The tf.distribute strategy of --strategy `name`; call it before TensorFlow runs any op.
    "none": TensorFlow's default strategy (one device). "mirrored": MirroredStrategy over every local
    GPU, or over `cpu_devices` logical CPU devices when there is no GPU (for trying and testing).
    "multiworker": MultiWorkerMirroredStrategy over the machines that $TF_CONFIG lists."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "multiworker":
        read_tf_config()  # a clear error before TensorFlow's own
        return tf.distribute.MultiWorkerMirroredStrategy()
    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy(split_cpu(cpu_devices))


def is_chief(strategy):
    """True in the process that writes outputs: worker 0 of a multi-worker cluster (or its "chief"),
    the only process otherwise."""
    return strategy.extended.should_checkpoint


def cpu_flags(path="/proc/cpuinfo"):
    """The instruction-set flags of this machine's CPU (Linux: /proc/cpuinfo), or an empty set."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpus_have_bf16(gpus):
    """True if every GPU in `gpus` computes in bfloat16 natively (NVIDIA compute capability 8.0+)."""
    capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability") for gpu in gpus]
    return all(c is not None and c >= (8, 0) for c in capabilities)


def resolve_precision(precision, gpus=None, flags=None, force=False):
    """The precision that --precision `precision` (one of PRECISIONS) trains in: fp32, bf16 or fp16.
    auto: bf16 where the hardware computes in it natively (a CPU with AVX512-BF16 or AMX, or GPUs of
    compute capability 8.0+), else fp32. fp16 needs a GPU: without one, a note and fp32 (unless
    `force`: tests run the GPU code path on a CPU that way). bf16 on a CPU without bf16
    instructions works, emulated: a note says it will be slower. `gpus`, `flags`: the machine's
    (tf.config.list_physical_devices("GPU"), cpu_flags()) unless given."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    gpus = tf.config.list_physical_devices("GPU") if gpus is None else gpus
    native_bf16 = gpus_have_bf16(gpus) if gpus else bool(BF16_CPU_FLAGS & (cpu_flags() if flags is None else flags))
    if precision == "auto":
        return "bf16" if native_bf16 else "fp32"
    if precision == "fp16" and not gpus and not force:
        print("--precision fp16 needs a GPU and none is visible: training continues in fp32 "
              "(--precision bf16 or auto for this CPU).")
        return "fp32"
    if precision == "bf16" and not native_bf16:
        print("--precision bf16: this machine has no native bfloat16 arithmetic (AVX512-BF16 or AMX, or a GPU "
              "of compute capability 8.0+): it is emulated and likely slower than fp32.")
    return precision


@contextlib.contextmanager
def precision_policy(precision="fp32"):
    """Inside the block, layers are built with the Keras dtype policy of `precision` (already
    resolved: fp32, bf16 or fp16): "mixed_bfloat16" / "mixed_float16" compute in 16 bits and keep
    float32 weights; layers built with dtype="float32" (the nets' last ones, so every loss is
    float32) stay float32. The previous global policy comes back on exit."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[precision])
    try:
        yield precision
    finally:
        keras.mixed_precision.set_global_policy(previous)


def sync_batch_norm(*nets):
    """Make every BatchNormalization layer of `nets` normalise over the global batch under a
    tf.distribute strategy (statistics all-reduced across replicas), so that N replicas compute
    what one device computes on the whole batch. Keras reads `synchronized` at each call, so it
    can be set on built nets. Outside a strategy it changes nothing."""
    for net in nets:
        for layer in net.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True


def with_loss_scaling(optimizer):
    """`optimizer` wrapped in a LossScaleOptimizer when layers are built in float16 (inside
    precision_policy("fp16")): float16 gradients would underflow without it (bfloat16 has float32's
    range: no scaling). Else `optimizer` itself."""
    if keras.mixed_precision.global_policy().compute_dtype == "float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def agree_on_finite(grads):
    """`grads` (one replica's loss-scaled gradients), made non-finite on every replica when they
    are on any. LossScaleOptimizer checks each replica's own gradients before they are summed: if
    the replicas disagreed, some would apply an inf/NaN sum while others skip the step (and across
    machines, one would wait forever in the all-reduce). With one replica it returns `grads`."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return grads
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])
    bad_replicas = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
    poison = tf.where(bad_replicas > 0, float("nan"), 0.0)  # NaN everywhere, or + 0.0
    return [g if g is None else g + tf.cast(poison, g.dtype) for g in grads]


def assign_on_every_replica(variables, values):
    """variables[i].assign(values[i]) for values that every replica computed alike (from mirrored
    weights). Keras variables have no aggregation, and a mirrored one cannot be assigned in a
    replica's context: the assignment is done once, from the cross-replica context (merge_call)."""
    def assign(strategy, values):
        for variable, value in zip(variables, values):  # the tf.Variable inside the Keras one
            strategy.extended.update(variable.value, lambda v, x: v.assign(x), args=(value,))
    context = tf.distribute.get_replica_context()
    if context is None or not tf.distribute.has_strategy():
        for variable, value in zip(variables, values):
            variable.assign(value)
    else:
        context.merge_call(assign, args=(values,))


def adapt_to_strategy(model):
    """Prepare a Pix2Pix `model` built under a strategy's scope for training on its replicas:
    - BatchNorm synchronised across replicas (sync_batch_norm), so N replicas compute what one
      device computes on the whole batch;
    - Keras' symbolic build skipped: both nets are built at construction, and Keras 3.15's version
      would first strategy.reduce a (src, target) batch across replicas, which fails under
      MultiWorkerMirroredStrategy (its reduce takes one tensor, not a tuple);
    - under MultiWorkerMirroredStrategy with several workers, Keras 3.15 reduces step outputs with
      strategy.reduce("MEAN", value, axis=0), which fails on scalars (tensorflow/tensorflow#72388):
      there every logged value is returned with shape [1], which that reduction turns into the
      scalar mean over the replicas.
    These use Keras internals (private behaviour of 3.15): check them again on an upgrade.
    Outside a strategy (one device) it changes nothing."""
    strategy = tf.distribute.get_strategy()
    if not tf.distribute.has_strategy():
        return model
    if strategy.num_replicas_in_sync > 1:
        sync_batch_norm(model.generator, model.discriminator)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    if several_workers(strategy):
        for name in ("train_step", "test_step"):
            step = getattr(model, name)
            setattr(model, name, lambda data, step=step: {k: tf.reshape(v, [1]) for k, v in step(data).items()})
    return model


def several_workers(strategy):
    """True under MultiWorkerMirroredStrategy with more than one worker (Keras' own test)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.extended._in_multi_worker_mode())


def agree_on_signal(strategy, signum):
    """The signal number that any worker received (this one's `signum`, or 0 for none), the same
    on every worker: with several workers an all-reduce, which every worker must call at the same
    points (each training step), so that they all stop at the same step."""
    if not several_workers(strategy):
        return signum
    mine = tf.constant([1.0 if signum else 0.0, float(signum or 0)])
    count, total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: mine), axis=None).numpy()
    return int(round(total / count)) if count else 0


class ReplicatedPix2Pix(Pix2Pix):
    """Pix2Pix for several replicas (a tf.distribute strategy) and float16, built inside
    strategy.scope() and precision_policy(): adapted to the strategy (adapt_to_strategy), both
    optimizers loss-scaled under float16 (with_loss_scaling), the loss scaled per replica and
    the weight average assigned across replicas. On one device in float32 it computes exactly
    what Pix2Pix computes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        adapt_to_strategy(self)

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        super().compile(d_optimizer, g_optimizer, **kwargs)
        self.d_optimizer, self.g_optimizer = with_loss_scaling(self.d_optimizer), with_loss_scaling(self.g_optimizer)

    def apply_loss(self, optimizer, tape, loss, variables):
        """Pix2Pix.apply_loss, replica- and loss-scaled (apply_scaled_loss)."""
        apply_scaled_loss(optimizer, tape, loss, variables)

    def update_average(self):
        """Pix2Pix.update_average, assigned once from the cross-replica context."""
        assign_on_every_replica(self.ema_generator.weights, self.averaged_weights())


def apply_scaled_loss(optimizer, tape, loss, variables):
    """One step of `optimizer` on `variables` down the gradient of `loss` (float32 scalar: the
    mean over this replica's share of the batch) recorded on `tape`, with the gradient of
    loss / replicas * loss scale injected at the top of the backward pass:
    - / replicas: optimizer.apply_gradients all-reduces the replicas' gradients with a SUM
      (keras TFOptimizer._all_reduce_sum_gradients), so the sum is the gradient of the mean over
      the global batch. One device: replicas = 1.
    - * loss scale: a LossScaleOptimizer (float16) multiplies by its dynamic scale so that
      float16 gradients do not underflow, and its apply_gradients divides by it again (skipping
      the step if they are not finite: on every replica, or on none, see agree_on_finite).
      Other optimizers' scale_loss returns its argument unchanged."""
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    factor = optimizer.scale_loss(tf.constant(1.0 / replicas, loss.dtype))
    grads = tape.gradient(loss, variables, output_gradients=factor)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        grads = agree_on_finite(grads)
    optimizer.apply_gradients(zip(grads, variables))
