using GptJx.Model;
using GptJx.Tensors;

namespace GptJx.Tests.Model;

public class ModelConfigTests
{
    // The published BTLM-3B-8k-base config.json (math keys as published).
    internal const string Btlm3B = """
    {
      "_name_or_path": "cerebras/btlm-3b-8k-base",
      "activation_function": "swiglu",
      "architectures": ["BTLMLMHeadModel"],
      "attn_pdrop": 0.0,
      "auto_map": {"AutoConfig": "configuration_btlm.BTLMConfig", "AutoModel": "modeling_btlm.BTLMModel"},
      "bos_token_id": 50256,
      "embd_pdrop": 0.0,
      "eos_token_id": 50256,
      "initializer_range": 0.073,
      "layer_norm_epsilon": 1e-05,
      "model_type": "btlm",
      "mup_embeddings_scale": 14.6,
      "mup_output_alpha": 2.2200000000000003,
      "mup_scale_qk_dot_by_d": true,
      "mup_width_scale": 0.1,
      "n_embd": 2560,
      "n_head": 32,
      "n_inner": 6826,
      "n_layer": 32,
      "n_positions": 8192,
      "position_embedding_type": "alibi",
      "reorder_and_upcast_attn": false,
      "resid_pdrop": 0.0,
      "scale_attn_by_inverse_layer_idx": false,
      "scale_attn_weights": true,
      "torch_dtype": "bfloat16",
      "transformers_version": "4.30.0",
      "use_cache": true,
      "vocab_size": 50257
    }
    """;

    [Test]
    public void ReadsThePublishedConfig()
    {
        var c = ModelConfig.Parse(Btlm3B);
        Assert.Multiple(() =>
        {
            Assert.That(c.Layers, Is.EqualTo(32));
            Assert.That(c.Width, Is.EqualTo(2560));
            Assert.That(c.FeedForwardWidth, Is.EqualTo(6826));
            Assert.That(c.Heads, Is.EqualTo(32));
            Assert.That(c.HeadDim, Is.EqualTo(80));
            Assert.That(c.ContextLength, Is.EqualTo(8192));
            Assert.That(c.VocabularySize, Is.EqualTo(50257));
            Assert.That(c.EmbeddingScale, Is.EqualTo(14.6f));
            Assert.That(c.LogitScale, Is.EqualTo(0.222f).Within(1e-6));
            Assert.That(c.TieWordEmbeddings, Is.True, "absent tie_word_embeddings means tied");
            Assert.That(c.TorchDType, Is.EqualTo(DType.BF16));
            Assert.That(c.UnknownKeys, Is.Empty);
            Assert.That(c.ParameterCount, Is.EqualTo(2_646_255_776L), "the published parameter count");
            // mup_scale_qk_dot_by_d: q.k / d, not / sqrt(d)
            Assert.That(c.ScoreScale(0), Is.EqualTo(1f / 80));
            Assert.That(c.ScoreScale(31), Is.EqualTo(1f / 80));
        });
    }

    [Test]
    public void ScoreScaleFollowsEachKey()
    {
        var c = ModelConfig.Parse(Btlm3B.Replace("\"mup_scale_qk_dot_by_d\": true", "\"mup_scale_qk_dot_by_d\": false")
            .Replace("\"scale_attn_by_inverse_layer_idx\": false", "\"scale_attn_by_inverse_layer_idx\": true"));
        Assert.That(c.ScoreScale(0), Is.EqualTo(1 / MathF.Sqrt(80)).Within(1e-7));
        Assert.That(c.ScoreScale(3), Is.EqualTo(1 / MathF.Sqrt(80) / 4).Within(1e-7));
        var unscaled = ModelConfig.Parse(Btlm3B.Replace("\"scale_attn_weights\": true", "\"scale_attn_weights\": false"));
        Assert.That(unscaled.ScoreScale(5), Is.EqualTo(1f));
    }

    [Test]
    public void UnknownKeysAreReportedNotFatal()
    {
        var c = ModelConfig.Parse(Btlm3B.Replace("\"use_cache\": true", "\"use_cache\": true, \"my_new_key\": 3"));
        Assert.That(c.UnknownKeys, Is.EqualTo(new[] { "my_new_key" }));
    }

    [TestCase("\"activation_function\": \"swiglu\"", "\"activation_function\": \"gelu_new\"", "activation_function", "'gelu_new' is not supported")]
    [TestCase("\"position_embedding_type\": \"alibi\"", "\"position_embedding_type\": \"learned\"", "position_embedding_type", "'learned' is not supported")]
    [TestCase("\"position_embedding_type\": \"alibi\",", "", "position_embedding_type", "'learned' is not supported")]
    [TestCase("\"model_type\": \"btlm\"", "\"model_type\": \"llama\"", "model_type", "not a GPT-JX/BTLM model")]
    [TestCase("\"n_head\": 32", "\"n_head\": 33", "n_head", "does not divide n_embd 2560")]
    [TestCase("\"n_layer\": 32", "\"n_layer\": 0", "n_layer", "must be positive")]
    [TestCase("\"n_layer\": 32,", "", "n_layer", "missing")]
    [TestCase("\"n_embd\": 2560", "\"n_embd\": \"big\"", "n_embd", "expected an integer")]
    [TestCase("\"layer_norm_epsilon\": 1e-05", "\"layer_norm_epsilon\": -1", "layer_norm_epsilon", "must be a positive finite number")]
    [TestCase("\"mup_scale_qk_dot_by_d\": true", "\"mup_scale_qk_dot_by_d\": 1", "mup_scale_qk_dot_by_d", "expected true or false")]
    [TestCase("\"torch_dtype\": \"bfloat16\"", "\"torch_dtype\": \"int8\"", "torch_dtype", "'int8' is not supported")]
    [TestCase("\"use_cache\": true", "\"use_cache\": true, \"alibi_scaling\": {\"type\": \"dynamic\", \"factor\": 2}", "alibi_scaling", "type 'dynamic' is not supported")]
    [TestCase("\"use_cache\": true", "\"use_cache\": true, \"alibi_scaling\": {\"type\": \"linear\", \"factor\": 0.5}", "alibi_scaling", "factor must be a number > 1")]
    [TestCase("\"use_cache\": true", "\"use_cache\": true, \"alibi_scaling\": {\"type\": \"linear\"}", "alibi_scaling", "exactly one of 'factor' or 'train_seq_len'")]
    [TestCase("\"use_cache\": true", "\"use_cache\": true, \"alibi_scaling\": {\"type\": \"linear\", \"factor\": 2, \"x\": 1}", "alibi_scaling", "unknown field 'x'")]
    public void UnsupportedValuesNameTheKey(string from, string to, string key, string reason)
    {
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(Btlm3B.Replace(from, to), "m/config.json"));
        Assert.That(e!.Key, Is.EqualTo(key));
        Assert.That(e.Message, Does.StartWith($"m/config.json: key '{key}': ").And.Contains(reason));
    }

    [Test]
    public void AlibiScalingForms()
    {
        var fixedFactor = ModelConfig.Parse(Btlm3B.Replace("\"use_cache\": true", "\"use_cache\": true, \"alibi_scaling\": {\"type\": \"linear\", \"factor\": 4.0}"));
        Assert.That(fixedFactor.AlibiScaling!.SlopeMultiplier(10), Is.EqualTo(0.25f));
        var trained = ModelConfig.Parse(Btlm3B.Replace("\"use_cache\": true", "\"use_cache\": true, \"alibi_scaling\": {\"type\": \"linear\", \"train_seq_len\": 2048}"));
        Assert.That(trained.AlibiScaling!.SlopeMultiplier(2048), Is.EqualTo(1f));
        Assert.That(trained.AlibiScaling!.SlopeMultiplier(8192), Is.EqualTo(0.25f));
    }

    [Test]
    public void MissingFileAndBadJsonNameTheFile()
    {
        var dir = Directory.CreateTempSubdirectory("gptjx-config-").FullName;
        try
        {
            var missing = Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir));
            Assert.That(missing!.Message, Does.Contain(Path.Combine(dir, "config.json")).And.Contain("file not found"));
            File.WriteAllText(Path.Combine(dir, "config.json"), "{ \"n_layer\": ");
            var bad = Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir));
            Assert.That(bad!.Message, Does.Contain("config.json").And.Contain("not valid JSON"));
        }
        finally { Directory.Delete(dir, true); }
    }
}
