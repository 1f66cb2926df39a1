#!/bin/bash
# Re-runs the config reproducers of the hostile-input test against a build of l2s (default: the
# -Ounchecked release build, where an unchecked value is undefined behaviour rather than a trap):
# each case copies a fixture, changes one value with sed and runs one generation under a 4 GB
# address-space cap. Every case must end with exit 64 and one stderr line; a signal (rc ≥ 128),
# "Fatal error", "free():" or a multi-line stderr fails the script.
#   Scripts/hostile_configs.sh [.build/release/l2s]
set -u
l2s=${1:-.build/release/l2s}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

run_case() {  # name, kind (sd|toy), file, sed expression
    local name=$1 kind=$2 file=$3 expr=$4 dir="$work/$1"
    if [ "$kind" = sd ]; then
        cp -r "$root/Tests/DiffusionTests/Fixtures/tiny-sd" "$dir"
        args=(--model "$dir" --prompt "a dog left of a cat")
    else
        mkdir -p "$dir" && cp -r "$root/Assets/toy" "$dir/toy"
        args=(--assets "$dir" --steer --prompt "a red circle to the left of a blue square")
    fi
    sed -i -E "$expr" "$dir/$file"
    if cmp -s "$dir/$file" "${root}/$( [ "$kind" = sd ] && echo Tests/DiffusionTests/Fixtures/tiny-sd || echo Assets)/$file"; then
        echo "SETUP $name: sed changed nothing"; fail=1; return
    fi
    (ulimit -v 4194304; "$l2s" generate "${args[@]}" --steps 2 --threads 1 --out "$dir/o.png" >/dev/null 2>"$dir/err")
    local rc=$? lines
    lines=$(grep -c . "$dir/err")
    if [ $rc -ne 64 ] || [ "$lines" -ne 1 ] || grep -qE "Fatal error|free\(\)|Backtrace" "$dir/err"; then
        echo "FAIL $name: rc=$rc lines=$lines: $(head -c 300 "$dir/err")"; fail=1
    else
        echo "ok   $name: $(cut -c1-150 "$dir/err")"
    fi
}

u=unet/config.json t=text_encoder/config.json v=vae/config.json s=scheduler/scheduler_config.json
run_case norm_groups_0 sd $u 's/"norm_num_groups": 2/"norm_num_groups": 0/'
run_case norm_groups_neg sd $u 's/"norm_num_groups": 2/"norm_num_groups": -8/'
run_case head_dim_0 sd $u 's/"attention_head_dim": 2/"attention_head_dim": 0/'
run_case head_dim_neg sd $u 's/"attention_head_dim": 2/"attention_head_dim": -1/'
run_case sample_size_0 sd $u 's/"sample_size": 8/"sample_size": 0/'
run_case sample_size_neg sd $u 's/"sample_size": 8/"sample_size": -1/'
run_case sample_size_2e62 sd $u 's/"sample_size": 8/"sample_size": 4611686018427387904/'
run_case padding_1e9 sd $u 's/"downsample_padding": 1/"downsample_padding": 1000000000/'
run_case channels_2e62 sd $u 's/^    8,/    4611686018427387904,/'
run_case channels_1e8 sd $u 's/^    8,/    100000000,/'
run_case layers_neg sd $u 's/"layers_per_block": 1/"layers_per_block": -1/'
run_case layers_1e8 sd $u 's/"layers_per_block": 1/"layers_per_block": 100000000/'
run_case te_heads_0 sd $t 's/"num_attention_heads": 4/"num_attention_heads": 0/'
run_case te_heads_neg sd $t 's/"num_attention_heads": 4/"num_attention_heads": -8/'
run_case te_intermediate_neg sd $t 's/"intermediate_size": 37/"intermediate_size": -1/'
run_case te_vocab_1e8 sd $t 's/"vocab_size": 1000/"vocab_size": 100000000/'
run_case te_layers_neg sd $t 's/"num_hidden_layers": 2/"num_hidden_layers": -1/'
run_case vae_in_neg sd $v 's/"in_channels": 3/"in_channels": -1/'
run_case vae_groups_0 sd $v 's/"norm_num_groups": 2/"norm_num_groups": 0/'
run_case vae_layers_neg sd $v 's/"layers_per_block": 1/"layers_per_block": -8/'
run_case timesteps_max sd $s 's/"num_train_timesteps": 1000/"num_train_timesteps": 9223372036854775807/'
run_case timesteps_neg sd $s 's/"num_train_timesteps": 1000/"num_train_timesteps": -1/'
run_case timesteps_0 sd $s 's/"num_train_timesteps": 1000/"num_train_timesteps": 0/'
run_case beta_start_2 sd $s 's/"beta_start": 0.00085/"beta_start": 2.0/'
run_case beta_end_neg sd $s 's/"beta_end": 0.012/"beta_end": -1/'
run_case vocab_eos_neg sd tokenizer/vocab.json 's/"<\|endoftext\|>": ?[0-9]+/"<|endoftext|>": -1/'
run_case toy_image_33 toy toy/config.json 's/"image_size" : 32/"image_size" : 33/'
run_case toy_image_neg toy toy/config.json 's/"image_size" : 32/"image_size" : -1/'
run_case toy_max_tokens_0 toy toy/config.json 's/"max_tokens" : 16/"max_tokens" : 0/'
run_case toy_max_tokens_17 toy toy/config.json 's/"max_tokens" : 16/"max_tokens" : 17/'
run_case toy_te_heads_neg toy toy/config.json 's/"num_attention_heads" : 4/"num_attention_heads" : -1/'
run_case toy_head_dim_0 toy toy/config.json 's/"attention_head_dim" : 4/"attention_head_dim" : 0/'
run_case toy_in_channels_neg toy toy/config.json 's/"in_channels" : 3/"in_channels" : -1/'
run_case toy_sample_size_0 toy toy/config.json 's/"sample_size" : 32/"sample_size" : 0/'
exit $fail
