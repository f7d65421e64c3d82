"""Run in a fresh process by test_distribute: the CPU is split into 2 logical devices before
TensorFlow starts; 1 device and 2 replicas train the same tiny nets; prints RESULT{json}."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tools import distribute  # noqa: E402

devices = distribute.split_cpu(2)  # before TensorFlow starts
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from config import Config  # noqa: E402
from nets import patch_discriminator, unet  # noqa: E402
from pix2pix import build_model  # noqa: E402
from tools.distribute import ReplicatedPix2Pix, apply_scaled_loss  # noqa: E402


def tiny():  # no dropout: its random masks cannot match between 1 and 2 devices
    model = ReplicatedPix2Pix(generator=unet((16, 16, 1), filters=4, max_filters=8, dropout=0.0),  # under the
                              discriminator=patch_discriminator((16, 16, 1), filters=4), l1_weight=10.0)  # strategy
    # SGD, not Adam: Adam ignores a constant factor on the gradients, so a wrong loss scaling
    # across replicas would go unseen.
    model.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
    return model


rng = np.random.default_rng(0)
src, target = (rng.uniform(-1, 1, (24, 16, 16, 1)).astype("float32") for _ in range(2))
pairs = tf.data.Dataset.from_tensor_slices((src, target)).batch(8)  # 3 global batches of 8
keras.utils.set_random_seed(0)
one = tiny()
start = one.get_weights()
one_logs = one.fit(pairs, epochs=1, verbose=0).history
strategy = tf.distribute.MirroredStrategy(devices)
with strategy.scope():
    two = tiny()
two.set_weights(start)
two_logs = two.fit(pairs, epochs=1, verbose=0).history
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(one.get_weights(), two.get_weights()))
moved = max(float(np.max(np.abs(a - b))) for a, b in zip(start, one.get_weights()))

# LossScaleOptimizer with gradients that overflow on replica 1 only: every replica must skip.
with strategy.scope():
    w = keras.Variable(np.ones(3, "float32"))
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    opt.build([w])
batch = tf.constant([[1.0, 1, 1], [1, 1, 1], [np.inf, 1, 1], [1, 1, 1]])  # replica 1: rows 2, 3

@tf.function
def lso_step(batch):
    def replica(b):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(b * w)
        apply_scaled_loss(opt, tape, loss, [w])
    strategy.run(replica, args=(batch,))
for b in strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch)):
    lso_step(b)

# build_model under both: synchronised BatchNorm, loss-scaled optimizers, one fit step
with strategy.scope(), distribute.precision_policy("fp16"):
    mixed = build_model(Config.mnist(gen_filters=4, gen_max_filters=8, disc_filters=4), img_shape=(16, 16, 1),
                        model_class=ReplicatedPix2Pix)
first = next(iter(strategy.experimental_distribute_dataset(pairs)))
mixed_logs = strategy.reduce("MEAN", strategy.run(mixed.train_step, args=(first,)), axis=None)  # eager: fast
print("RESULT" + json.dumps(dict(
    replicas=strategy.num_replicas_in_sync, diff=diff, moved=moved, one_logs=one_logs, two_logs=two_logs,
    lso_w=w.numpy().tolist(), lso_scale=float(opt.dynamic_scale.numpy()),
    mixed_logs={k: float(v) for k, v in mixed_logs.items()},
    synced=all(layer.synchronized for layer in mixed.generator.layers
               if isinstance(layer, keras.layers.BatchNormalization)),
    mixed_opt=type(mixed.g_optimizer).__name__)))
