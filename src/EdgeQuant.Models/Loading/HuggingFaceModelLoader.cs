namespace EdgeQuant.Models.Loading;

public static class HuggingFaceModelLoader
{
    public static Model Load(string path) => throw new NotImplementedException("HuggingFaceModelLoader is being written");
}
