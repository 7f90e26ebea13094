namespace EdgeQuant.Models.Loading;

public static class Llama2cModelLoader
{
    public static Model Load(string path, string? tokenizerPath = null) => throw new NotImplementedException("Llama2cModelLoader is being written");
}
